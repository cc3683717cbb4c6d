"""Imports every module that defines tables, so ``Base.metadata`` is complete (alembic, tests)."""

from suite.accounts import models as accounts_models  # noqa: F401
from suite.files import models as files_models  # noqa: F401
from suite.mail.queue import models as queue_models  # noqa: F401
from suite.mail.sieve import models as sieve_models  # noqa: F401
from suite.mail.smtp import translog as smtp_translog  # noqa: F401
from suite.mail.store import email_models  # noqa: F401
from suite.mail.store import models as mail_models  # noqa: F401
from suite.storage import models as storage_models  # noqa: F401
from suite.storage.network import models as network_models  # noqa: F401
from suite.voip import models as voip_models  # noqa: F401
