"""Sieve mail filtering (RFC 5228 + fileinto, envelope, body, copy, imap4flags, vacation, mailbox,
variables, relational, date).

``parser`` (lexer + grammar, RFC 5228 §8), ``validate`` (known commands, ``require``, typed tree),
``evaluate`` (message + envelope → actions), ``vacation`` (RFC 5230/3834 reply rules), ``srs``
(sender rewriting for redirects), ``rules`` (the web rule builder → Sieve) are pure; ``store`` keeps
scripts and vacation state in the database, ``delivery`` runs the active script at local delivery.
"""

from .evaluate import Outcome, evaluate
from .message import Envelope, MessageView
from .parser import SieveError
from .validate import EXTENSIONS, Script, compile_script

__all__ = ["EXTENSIONS", "Envelope", "MessageView", "Outcome", "Script", "SieveError", "compile_script", "evaluate"]
