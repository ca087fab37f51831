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

/* How the daemon's two connections (ingest.h: readings, control.h: queries
 * and status) reach the broker: the [mqtt] keys. Strings are borrowed. */
struct mqtt_conn_opts {
    const char *uri, *client_id, *username, *password_file, *topic_prefix;
    const char *ca_file, *cert_file, *key_file; /* "" = none */
    int keepalive_s, session_expiry_s;
    bool tcp_nodelay; /* on the broker connection */
};

struct mqtt_peers {
    struct sockaddr_storage addr[MQTT_PEERS_MAX];
    size_t n;
};

/* Host and port of a broker URI ("scheme://host:port/path", "[v6]:p"; the
 * scheme's default port when none); false when it has no host. */
bool mqtt_uri_endpoint(const char *uri, char *host, size_t host_cap, char *port, size_t port_cap);
/* True for the TLS schemes (ssl://, mqtts://, wss://). */
bool mqtt_uri_tls(const char *uri);

/* True if a TCP connection to host:port can be made within timeout_ms (it
 * is closed at once): lets a blocking connect that follows return quickly. */
bool mqtt_tcp_probe(const char *host, const char *port, int timeout_ms);

/* The broker's addresses from its URI ("tcp://host:port", "ssl://[v6]:p",
 * ...); none when it does not resolve. */
void mqtt_peers_resolve(struct mqtt_peers *p, const char *uri);
/* Sets TCP_NODELAY on the process's TCP sockets connected to one of p's
 * addresses; true if at least one has it now. */
bool mqtt_peers_nodelay(const struct mqtt_peers *p);

/* Paho's own protocol trace off, unless MQTT_C_CLIENT_TRACE asks for it.
 * Paho formats a line (vsnprintf under a global mutex, into its in-memory
 * trace ring) for every packet and every traced function entry at its
 * default level, even with no trace destination: a quarter of the
 * receive thread at 60,000 msg/s (perf; docs/BENCHMARKS.md). Call after the
 * process's first MQTTAsync_create (which reads the environment); once per
 * process, any thread. Errors are still traced. */
void mqtt_paho_quiet(void);

#endif
