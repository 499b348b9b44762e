#!/bin/bash -eu
# Healthy: the node's AMQP and management listeners accept connections (what
# `rabbitmq-diagnostics check_port_connectivity` tests) and the node itself
# answers HTTP on the Prometheus plugin's port (a 404 for `/` will do: the Erlang node replied).
# Not that CLI: each of its runs starts an Erlang VM, 0.85 s of CPU measured on the test cluster,
# every 10 s; this check takes milliseconds and no Erlang cookie. A connection opened on 5672 is
# closed before a word of AMQP: RabbitMQ logs a handshake cut short as a warning, this not at all.
# The ports are those of /etc/rabbitmq/rabbitmq.conf.
for port in 5672 15672; do
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    exec 3>&-
done
exec 3<>/dev/tcp/127.0.0.1/15692
printf 'GET / HTTP/1.0\r\n\r\n' >&3
IFS= read -r -t 5 status <&3
[[ $status == HTTP/1.* ]]
