"""Load and validate config.toml into frozen dataclasses; the only reader of TOML.

Every setting is declared once, as a dataclass field made with `setting()`: its
default, its help text and its constraints live there. The loader, the
`config.example.toml` generator and the tests all read that one declaration.

    checks.py    setting() and the checks of single values
    schema.py    one dataclass per section, and Config
    load.py      find, parse and check a file; say where a mistake is
    finish.py    what keys need together, the files they name, secrets: every mistake noted
    credentials.py  secrets from files, the environment and systemd credentials
    example.py   config.example.toml from the declarations

Everything the rest of digestd uses is imported from here.
"""

import sys

if sys.version_info >= (3, 11):
    import tomllib  # noqa: F401
else:  # pragma: no cover
    import tomli as tomllib  # noqa: F401

from ..errors import ConfigError  # noqa: F401
from .checks import (  # noqa: F401
    ANNOUNCE_TYPES,
    ARXIV_ARCHIVES,
    CONFIG_ENV,
    MAX_PAPERS_CAP,
    SOURCE_KINDS,
    check_address,
    check_announce_types,
    check_categories,
    check_dns_name,
    check_feedback_id,
    check_host,
    check_listen,
    check_mailto_address,
    check_networks,
    check_one_line,
    check_optional_address,
    check_optional_url,
    check_rate,
    check_return_path,
    check_source_name,
    check_store_url,
    check_time_of_day,
    check_time_zone,
    check_url,
    derived,
    duration_text,
    parse_duration,
    setting,
)
from .example import (  # noqa: F401
    EXAMPLE_SOURCES,
    example_config,
)
from .load import (  # noqa: F401
    check_dkim_key,
    check_store_folder,
    config_places,
    default_source,
    example_sender_warning,
    find_config,
    load_config,
    parse_config,
    shared_secret_warning,
    unsubscribe_mail_warning,
    unsubscribe_warning,
)
from .schema import (  # noqa: F401
    IMAP_PORTS,
    SECTIONS,
    Config,
    DeliveryConfig,
    DigestConfig,
    DkimConfig,
    InboundConfig,
    LogConfig,
    RelevanceConfig,
    SmtpConfig,
    SourceConfig,
    StoreConfig,
    WebConfig,
    check_folder,
    check_optional_host,
    check_relevance_method,
    is_loopback,
    settings,
    toml_key,
)
from .credentials import (  # noqa: F401
    read_secret,
    web_secret,
)
