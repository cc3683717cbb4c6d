"""ManageSieve (RFC 5804): ``protocol`` (sans-I/O command reader and response encoding),
``session`` (the state machine over the account store and the Sieve store), ``server`` (asyncio
service ``managesieve``)."""
