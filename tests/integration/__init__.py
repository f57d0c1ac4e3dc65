"""Integration tests against real RabbitMQ and PostgreSQL."""
