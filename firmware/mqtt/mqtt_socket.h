/*
 * mqtt_socket — TCP_NODELAY on the sockets Paho opens to the broker.
 *
 * Why: request/response over MQTT sends small writes both ways. With Nagle
 * on, a responder's PUBACK and its answer are two small writes: the second
 * waits until the first is acknowledged, and the peer delays that ACK
 * (~40 ms on Linux). Paho (1.3.x) never sets TCP_NODELAY, has no socket
 * option hook and keeps its descriptor private, so after every CONNACK the
 * owner looks through /proc/self/fd for TCP sockets whose peer is the
 * broker (the URI's host, resolved beforehand, and port) and sets
 * TCP_NODELAY on those that lack it. Other connections of the process to
 * the same broker port get it too (harmless: it only stops small writes
 * from waiting for an ACK). The broker's side is its own setting
 * (mosquitto: set_tcp_nodelay true).
 *
 * Threading: mqtt_peers_resolve on a thread that may block (getaddrinfo),
 * before connecting; mqtt_peers_nodelay from any thread (e.g. Paho's
 * onConnect callback: no DNS, a readdir of /proc/self/fd).
 */
#ifndef EL_MQTT_SOCKET_H
#define EL_MQTT_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define MQTT_PEERS_MAX 8

struct mqtt_peers {
    struct sockaddr_storage addr[MQTT_PEERS_MAX];
    size_t n;
};

/* The broker's addresses from its URI ("tcp://host:port", "ssl://[v6]:p",
 * ...); none when it does not resolve. */
void mqtt_peers_resolve(struct mqtt_peers *p, const char *uri);
/* Sets TCP_NODELAY on the process's TCP sockets connected to one of p's
 * addresses; true if at least one has it now. */
bool mqtt_peers_nodelay(const struct mqtt_peers *p);

#endif
