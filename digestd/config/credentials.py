"""Secrets kept outside config.toml: files, environment variables and systemd credentials
(read_secret), and the web app's signing secret (web_secret)."""

import errno
import os
import secrets as _secrets
import sys
import typing
from pathlib import Path

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

from ..errors import ConfigError, StoreError
from .schema import Config

# -- secrets -----------------------------------------------------------------------------------

def read_secret(credential: str, file_setting: str, env_var: str,
                env: typing.Mapping[str, str] | None = None, config_path: Path | None = None
                ) -> str | None:
    """A secret from, in order: the *_file setting, the environment, a systemd credential."""
    env = os.environ if env is None else env
    if file_setting:
        try:
            return Path(file_setting).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
            if isinstance(e, FileNotFoundError):
                other = f"{env_var} or " if env_var else ""
                why += (f" (write the secret alone into it, readable by digestd only: "
                        f"install -m 0600 /dev/null FILE, then edit it; or leave the setting "
                        f'empty and use {other}the systemd credential "{credential}")')
            raise ConfigError(f"cannot read secret file {file_setting}: {why}",
                              path=str(config_path) if config_path else None) from None
    if env.get(env_var):
        return env[env_var]
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / credential).is_file():
        return (Path(cred_dir) / credential).read_text(encoding="utf-8").strip()
    return None


def web_secret(config: Config) -> bytes:
    """The key that signs links: configured, or generated once next to the store and kept."""
    found = read_secret("secret", config.web.secret_file, "DIGESTD_SECRET", None, config.path)
    if found:
        return found.encode()
    path = Path(config.store.path).with_name("digestd.secret")
    try:
        found_bytes = path.read_bytes().strip()
    except FileNotFoundError:
        found_bytes = None
    if found_bytes:
        return found_bytes
    if found_bytes is not None:
        raise StoreError(f"the link secret {path} is empty: remove it and digestd makes a new "
                         "one (links in digests sent before stop working), or restore it")
    # written whole under another name, then linked into place: a full disk leaves no empty
    # secret behind, and of two processes making one at once the first wins
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(_secrets.token_urlsafe(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            pass
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            # a filesystem without hard links: create-if-absent, as before
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(partial.read_text(encoding="utf-8"))
    except OSError as e:
        what = "disk full: " if e.errno == errno.ENOSPC else ""
        raise StoreError(f"{what}cannot write the link secret {path} next to the store: "
                         f"{e.strerror or e}") from None
    finally:
        partial.unlink(missing_ok=True)
    return path.read_bytes().strip()


