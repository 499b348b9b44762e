#!/bin/sh
# The node runs and its AMQP listener is up (the official docs' "stage 2" check).
rabbitmq-diagnostics -q check_running && exec rabbitmq-diagnostics -q check_port_connectivity
