/*
 * mqtt_socket — TCP_NODELAY on Paho's sockets (design in mqtt_socket.h).
 */
#include "mqtt_socket.h"

#include <MQTTAsync.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

bool mqtt_uri_tls(const char *uri)
{
    return strncmp(uri, "ssl://", 6) == 0 || strncmp(uri, "mqtts://", 8) == 0 ||
           strncmp(uri, "wss://", 6) == 0;
}

bool mqtt_uri_endpoint(const char *uri, char *host, size_t host_cap, char *port, size_t port_cap)
{
    const char *sep = strstr(uri, "://");
    const char *p = sep != NULL ? sep + 3 : uri;
    const char *dflt = "1883";
    size_t n;

    if (sep != NULL && (strncmp(uri, "ssl", 3) == 0 || strncmp(uri, "mqtts", 5) == 0))
        dflt = "8883";
    else if (sep != NULL && strncmp(uri, "wss", 3) == 0)
        dflt = "443";
    else if (sep != NULL && strncmp(uri, "ws", 2) == 0)
        dflt = "80";
    if (*p == '[') {
        const char *close = strchr(p, ']');

        if (close == NULL)
            return false;
        n = (size_t)(close - p - 1);
        p++;
    } else {
        n = strcspn(p, ":/");
    }
    if (n == 0 || n >= host_cap)
        return false;
    memcpy(host, p, n);
    host[n] = '\0';
    p += n + (p[n] == ']' ? 1 : 0);
    n = *p == ':' ? strspn(p + 1, "0123456789") : 0;
    snprintf(port, port_cap, "%.*s", n > 0 ? (int)n : (int)strlen(dflt), n > 0 ? p + 1 : dflt);
    return true;
}

bool mqtt_tcp_probe(const char *host, const char *port, int timeout_ms)
{
    struct addrinfo hints, *res = NULL;
    bool ok = false;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return false;
    for (struct addrinfo *a = res; a != NULL && !ok; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            ok = true;
        } else if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t len = sizeof err;
            ok = poll(&p, 1, timeout_ms) == 1 &&
                 getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return ok;
}

void mqtt_peers_resolve(struct mqtt_peers *p, const char *uri)
{
    struct addrinfo hints, *res = NULL;
    char host[256], port[16];

    p->n = 0;
    if (!mqtt_uri_endpoint(uri, host, sizeof host, port, sizeof port))
        return;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return;
    for (struct addrinfo *a = res; a != NULL && p->n < MQTT_PEERS_MAX; a = a->ai_next) {
        if (a->ai_addrlen <= sizeof p->addr[0])
            memcpy(&p->addr[p->n++], a->ai_addr, a->ai_addrlen);
    }
    freeaddrinfo(res);
}

static bool same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return false;
}

/*
 * True if fd is a TCP socket connected to the broker. getsockopt fails with
 * ENOTSOCK on anything else; no fstat, which would touch other threads' fds
 * (SQLite's) in ways ThreadSanitizer reports as a race.
 */
static bool is_broker_socket(const struct mqtt_peers *p, int fd)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int type = 0, proto = 0;
    socklen_t ilen = sizeof type;

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) != 0 || type != SOCK_STREAM)
        return false;
    ilen = sizeof proto;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &ilen) != 0 || proto != IPPROTO_TCP)
        return false;
    if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
        return false;
    for (size_t k = 0; k < p->n; k++) {
        if (same_endpoint(&peer, &p->addr[k]))
            return true;
    }
    return false;
}

bool mqtt_peers_nodelay(const struct mqtt_peers *p)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    bool found = false;

    if (dir == NULL)
        return false;
    while ((e = readdir(dir)) != NULL) {
        char *end = NULL;
        long fd = strtol(e->d_name, &end, 10);
        int on = 0;
        socklen_t len = sizeof on;

        if (end == e->d_name || *end != '\0' || fd == dirfd(dir) || fd < 0 || fd > INT32_MAX ||
            !is_broker_socket(p, (int)fd))
            continue;
        if (getsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on == 0) {
            on = 1;
            if (setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0)
                on = 0;
        }
        found = found || on != 0;
    }
    closedir(dir);
    return found;
}

static void paho_quiet_once(void)
{
    const char *asked = getenv("MQTT_C_CLIENT_TRACE");
    if (asked == NULL || asked[0] == '\0')
        MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
}

void mqtt_paho_quiet(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, paho_quiet_once);
}
