"""One typed settings object for every process; each field reads one environment variable.

CLI flags override the environment by passing keyword arguments to `Settings(...)`.
"""
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str, description: str, default, **kw):
    # Field names stay pythonic; the environment variable is the alias, and the field name is
    # accepted too so code can write Settings(data_dir=...).
    return Field(default, validation_alias=AliasChoices(name, kw.pop("field")), description=description, **kw)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    data_dir: Path = _env("SOPHRA_DATA_DIR", "Folder for the embedded broker and ClickHouse data", Path("data"), field="data_dir")
    host: str = _env("SOPHRA_HOST", "Address the api listens on", "127.0.0.1", field="host")
    port: int = _env("SOPHRA_PORT", "Port the api listens on", 8000, field="port")
    kafka_bootstrap_servers: str | None = _env(
        "KAFKA_BOOTSTRAP_SERVERS", "Use this Kafka cluster; unset = start the embedded broker", None,
        field="kafka_bootstrap_servers")
    kafka_port: int = _env("SOPHRA_KAFKA_PORT", "Port of the embedded broker (0 = any free port)", 0, field="kafka_port")
    clickhouse_url: str | None = _env(
        "CLICKHOUSE_URL", "ClickHouse DSN (http://user:pass@host:8123); unset = chdb://<data dir>/clickhouse",
        None, field="clickhouse_url")
    clickhouse_database: str = _env("CLICKHOUSE_DATABASE", "ClickHouse database", "sophra", field="clickhouse_database")
    topic_prefix: str = _env("SOPHRA_TOPIC_PREFIX", "Prefix for every Kafka topic name", "", field="topic_prefix")
    node_id: int = _env("SOPHRA_NODE_ID", "Distinct id (0-31) of each api replica, part of record ids", 0,
                        field="node_id", ge=0, le=31)
    sink_group: str = _env("SOPHRA_SINK_GROUP", "Consumer group of the ClickHouse sink", "sophra-sink", field="sink_group")
    worker_id: str = _env("SOPHRA_WORKER_ID", "Faust application id (consumer group) of the worker", "sophra-worker",
                          field="worker_id")
    worker_instance_id: str | None = _env(
        "SOPHRA_WORKER_INSTANCE_ID", "Stable id of one worker replica (Kafka static membership): restarted "
        "with the same id it takes its partitions back at once, instead of after the 60 s session timeout; "
        "unique per replica; `sophra up` sets one for its worker", None, field="worker_instance_id")
    sink_batch_rows: int = _env("SOPHRA_SINK_BATCH_ROWS", "Rows per ClickHouse insert, at most", 10000,
                                field="sink_batch_rows", gt=0)
    sink_batch_ms: int = _env("SOPHRA_SINK_BATCH_MS", "Longest time a row waits in the sink before its insert", 250,
                              field="sink_batch_ms", gt=0)
    sink_give_up_s: float = _env("SOPHRA_SINK_GIVE_UP_S", "How long the sink retries a failing insert, dead letter "
                                 "or commit before it gives up and its process exits non-zero", 300,
                                 field="sink_give_up_s", gt=0)
    sql_timeout_s: float = _env("SOPHRA_SQL_TIMEOUT_S", "Longest an account's POST /v1/sql query may run (408 after)",
                                10, field="sql_timeout_s", gt=0)
    sql_max_memory_bytes: int = _env("SOPHRA_SQL_MAX_MEMORY_BYTES", "Memory one account query may use", 1 << 30,
                                     field="sql_max_memory_bytes", gt=0)
    sql_max_rows_read: int = _env("SOPHRA_SQL_MAX_ROWS_READ", "Rows one account query may read", 200_000_000,
                                  field="sql_max_rows_read", gt=0)
    sql_max_rows: int = _env("SOPHRA_SQL_MAX_ROWS", "Rows one account query may return", 100_000,
                             field="sql_max_rows", gt=0)
    public_url: str | None = _env("SOPHRA_PUBLIC_URL", "Base URL people reach the api at, for links in notifications; "
                                  "unset = http://<host>:<port>", None, field="public_url")
    smtp_url: str | None = _env("SOPHRA_SMTP_URL", "SMTP server for email alerts (smtp://user:pass@host:587, STARTTLS "
                                "when offered; smtps:// for implicit TLS); unset = email is not delivered", None,
                                field="smtp_url")
    smtp_from: str = _env("SOPHRA_SMTP_FROM", "Sender address of alert emails", "Sophra <alerts@sophra.local>",
                          field="smtp_from")
    slack_api_url: str = _env("SOPHRA_SLACK_API_URL", "Base URL of Slack's Web API (chat.postMessage)",
                              "https://slack.com/api", field="slack_api_url")
    outbound_allow: str = _env("SOPHRA_OUTBOUND_ALLOW", "Comma-separated CIDR ranges that user-given URLs may reach "
                               "although private or loopback (e.g. 127.0.0.0/8 for tests)", "", field="outbound_allow")
    notify_retry_base_ms: int = _env("SOPHRA_NOTIFY_RETRY_BASE_MS", "First retry delay of a failed delivery; doubles "
                                     "each attempt up to 30 min, with jitter, for 24 h", 5000,
                                     field="notify_retry_base_ms", gt=0)
    signup: Literal["open", "email", "closed"] = _env(
        "SOPHRA_SIGNUP", "Who gets API keys without one (README \"Keys\"): open = whoever names an email (one person "
        "on their own machine); email = a one-time link mailed to the address (needs SOPHRA_SMTP_URL); "
        "closed = only `sophra account create`", "open", field="signup")
    signup_per_address: int = _env("SOPHRA_SIGNUP_PER_ADDRESS", "Key requests without a key, per client address per "
                                   "hour, in every signup mode (per api process)", 5, field="signup_per_address", ge=1)
    signup_per_email: int = _env("SOPHRA_SIGNUP_PER_EMAIL", "Key requests without a key, per email per hour",
                                 3, field="signup_per_email", ge=1)
    notifier_group: str = _env("SOPHRA_NOTIFIER_GROUP", "Consumer group of the notifier", "sophra-notifier",
                               field="notifier_group")
    ready_max_sink_lag: int = _env("SOPHRA_READY_MAX_SINK_LAG", "/readyz fails while the sink is more than this many "
                                   "records behind", 100_000, field="ready_max_sink_lag", ge=0)
    lag_interval_s: float = _env("SOPHRA_LAG_INTERVAL_S", "Seconds between readings of consumer lags for /metrics",
                                 15.0, field="lag_interval_s", gt=0)
    metrics_token: str | None = _env("SOPHRA_METRICS_TOKEN", "If set, /metrics answers only requests with "
                                     "`Authorization: Bearer <token>`", None, field="metrics_token")

    @model_validator(mode="after")
    def _signup_can_mail(self):
        # Refuse to start rather than answer "check your inbox" for mails that can never go.
        if self.signup == "email" and not self.smtp_url:
            raise ValueError("SOPHRA_SIGNUP=email mails each new key's link: set SOPHRA_SMTP_URL (and SOPHRA_PUBLIC_URL "
                             "for the link), or choose SOPHRA_SIGNUP=closed (keys by `sophra account create`) "
                             "or open")
        return self

    @cached_property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse_url or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def topic(self, base: str) -> str:
        return self.topic_prefix + base


def env_help() -> str:
    """The environment variables and their meaning, for `--help`."""
    lines = ["environment variables:"]
    for name, field in Settings.model_fields.items():
        env = field.validation_alias.choices[0]
        lines.append(f"  {env:<26} {field.description} (default: {field.default})")
    return "\n".join(lines)
