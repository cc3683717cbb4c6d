"""The account store: domains, accounts, aliases, app passwords, quotas, logins."""
