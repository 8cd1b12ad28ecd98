# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Connection to a Kafka cluster for the kafka modules: confluent-kafka's AdminClient over TLS.

The modules run on a Kafka host, where the kafka role installs Debian's python3-confluent-kafka
(librdkafka) and the admin client certificate. Every failure is raised as KafkaModuleError
with the broker's message; the import is lazy so a missing library is one clear message.
"""

from __future__ import annotations

try:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    HAS_CONFLUENT_KAFKA = True
    IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the host
    AdminClient = None
    KafkaException = Exception
    HAS_CONFLUENT_KAFKA = False
    IMPORT_ERROR = exc

LIBRARY_HINT = (
    "the kafka modules need the confluent_kafka Python library on the host that runs them "
    "(Debian: python3-confluent-kafka; the kafka role installs it on the Kafka hosts)"
)


class KafkaModuleError(Exception):
    """A request refused (field, value, fix in the message) or a broker's error."""


def kafka_connection_argument_spec():
    """The connection options every kafka module shares (doc fragment idcloud.platform.kafka_client)."""
    return dict(
        bootstrap_servers=dict(type="list", elements="str", required=True),
        security_protocol=dict(type="str", default="SSL", choices=["SSL", "PLAINTEXT"]),
        ca_file=dict(type="path"),
        cert_file=dict(type="path"),
        key_file=dict(type="path", no_log=False),
        timeout=dict(type="int", default=30),
    )


def client_config(params):
    """librdkafka settings from the module's connection options."""
    config = {
        "bootstrap.servers": ",".join(params["bootstrap_servers"]),
        "security.protocol": params["security_protocol"],
        "socket.timeout.ms": max(1, params["timeout"]) * 1000,
    }
    if params["security_protocol"] == "SSL":
        for option, setting in (
            ("ca_file", "ssl.ca.location"),
            ("cert_file", "ssl.certificate.location"),
            ("key_file", "ssl.key.location"),
        ):
            if params.get(option):
                config[setting] = params[option]
    return config


def admin_client(params):
    if not HAS_CONFLUENT_KAFKA:
        raise KafkaModuleError("%s: %s" % (LIBRARY_HINT, IMPORT_ERROR))
    return AdminClient(client_config(params))


def wait(futures, timeout):
    """{key: future} -> {key: result}; the first failure raised as KafkaModuleError naming its key."""
    results = {}
    for key, future in futures.items():
        try:
            results[key] = future.result(timeout=timeout)
        except KafkaException as exc:
            raise KafkaModuleError("%s: %s" % (key, exc.args[0] if exc.args else exc)) from exc
        except Exception as exc:  # a timeout of the future, for instance
            raise KafkaModuleError("%s: %s" % (key, exc)) from exc
    return results
