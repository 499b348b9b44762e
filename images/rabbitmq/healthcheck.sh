#!/bin/sh
# The node runs and its AMQP listener is up (the official docs' "stage 2" check) in one CLI run:
# check_port_connectivity fails when it cannot reach a running node, and each run starts an Erlang
# VM, seconds of CPU on a loaded host. Docker runs a health check as the image's user, root here
# (the entrypoint drops to rabbitmq itself): the check drops too. As root, a check run before the
# node made its Erlang cookie would make it, root's, and the node could not read it.
if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups rabbitmq-diagnostics -q check_port_connectivity
fi
exec rabbitmq-diagnostics -q check_port_connectivity
