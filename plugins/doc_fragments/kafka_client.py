# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)


class ModuleDocFragment:
    # Connection options shared by the kafka modules (see module_utils/kafka/client.py).
    DOCUMENTATION = r"""
options:
  bootstrap_servers:
    description:
      - Brokers to ask first, as C(host:port) of a listener of O(security_protocol); the client learns
        the others from them.
    type: list
    elements: str
    required: true
  security_protocol:
    description:
      - V(SSL) (the kafka role's listeners, mutual TLS) or V(PLAINTEXT) (a plaintext listener, only where
        the user turned one on).
    type: str
    default: SSL
    choices: [SSL, PLAINTEXT]
  ca_file:
    description:
      - CA certificate (PEM) that signed the brokers' certificates.
    type: path
  cert_file:
    description:
      - Client certificate (PEM) presented to the brokers, which require one.
    type: path
  key_file:
    description:
      - Private key (PEM) of O(cert_file). Its content is never logged.
    type: path
  timeout:
    description:
      - Seconds to wait for the brokers' answer to each request.
    type: int
    default: 30
requirements:
  - confluent_kafka (Debian python3-confluent-kafka, librdkafka 2.0 or later) on the host that runs the module
notes:
  - Talks to the brokers through librdkafka's admin API; no Kafka tools or JVM are needed on the target.
"""
