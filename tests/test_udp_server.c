/* test_udp_server.c -- the UDP server over IPv4, IPv6 and UNIX datagram
 * sockets: echo, concurrency, no-reply, bad input, lifecycle and stop, under
 * each concurrency configuration (I/O threads, worker pool). */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "support.h"

#define WAIT_MS 5000

/* Replies "request|peer address", so a test can see what the server saw. */
static const char *peer_service(const char *request, void *user) {
  (void)user;
  const char *peer = sk_peer_address();
  socklen_t len = 0;
  const struct sockaddr *sa = sk_peer_sockaddr(&len);
  if (!peer || !sa || len == 0)
    return "no peer";
  return sk_replyf("%s|%s", request, peer);
}

/* Replies to everything except "silent". */
static const char *picky_service(const char *request, void *user) {
  (void)user;
  return strcmp(request, "silent") == 0 ? NULL : request;
}

/* The configurations the conformance tests run under. */
typedef struct udp_config {
  const char *name;
  long long model;
  long long workers;
  long long io_threads;
} udp_config;

static const udp_config configs[] = {
    {"event loop", SK_MODEL_EVENT_LOOP, 0, 1},
    {"2 I/O threads", SK_MODEL_EVENT_LOOP, 0, 2},
    {"worker pool", SK_MODEL_WORKER_POOL, 4, 1},
    {"2 I/O threads + worker pool", SK_MODEL_WORKER_POOL, 4, 2},
};
#define NCONFIGS (int)(sizeof configs / sizeof configs[0])

static sk_udp_server *configured(const char *address, sk_service service, void *user,
                                 const udp_config *c) {
  sk_udp_server *srv = NULL;
  ck_assert_int_eq(sk_udp_server_create(&srv, address, service, user), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MODEL, c->model), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_WORKERS, c->workers), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_IO_THREADS, c->io_threads), SK_OK);
  return srv;
}

/* Echo through a server on server_address; the client sends to client_host
 * at the server's port, or to the server's own address if it is NULL. */
static void echo_config(const char *server_address, const char *client_host, const udp_config *c) {
  sk_test_udp t;
  ck_assert_msg(sk_test_udp_start_server(&t, configured(server_address, peer_service, NULL, c)) ==
                    SK_OK,
                "%s: %s", server_address, c->name);
  char target[160];
  if (client_host)
    snprintf(target, sizeof target, "%s:%d", client_host, t.port);
  else
    snprintf(target, sizeof target, "%s", t.address);
  int fd = sk_test_udp_socket(target);
  ck_assert_int_ge(fd, 0);

  struct sockaddr_storage self;
  socklen_t self_len = sizeof self;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&self, &self_len), 0);

  char reply[512];
  ck_assert_int_eq(sk_test_udp_exchange(fd, "hello", 5, reply, sizeof reply, WAIT_MS),
                   (ssize_t)strlen(reply));
  ck_assert_msg(strncmp(reply, "hello|", 6) == 0, "reply was '%s'", reply);
  /* The peer text names the client's own address (port included for IP). */
  if (self.ss_family == AF_INET) {
    char want[64];
    snprintf(want, sizeof want, "hello|127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&self)->sin_port));
    ck_assert_str_eq(reply, want);
  } else if (self.ss_family == AF_INET6) {
    char want[80];
    snprintf(want, sizeof want, "hello|[::1]:%d", ntohs(((struct sockaddr_in6 *)&self)->sin6_port));
    ck_assert_str_eq(reply, want);
  } else {
    ck_assert_msg(strncmp(reply, "hello|unix:@", 12) == 0, "reply was '%s'", reply);
  }
  /* Empty datagrams are valid requests with an empty reply prefix. */
  ck_assert_int_ge(sk_test_udp_exchange(fd, "", 0, reply, sizeof reply, WAIT_MS), 1);
  ck_assert_msg(reply[0] == '|', "reply was '%s'", reply);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}

/* The same under every configuration. */
static void echo_once(const char *server_address, const char *client_host) {
  for (int i = 0; i < NCONFIGS; i++)
    echo_config(server_address, client_host, &configs[i]);
}

START_TEST(test_echo_ipv4) {
  echo_once("127.0.0.1:0", NULL);
}
END_TEST

START_TEST(test_echo_ipv6) {
  if (!sk_test_have_ipv6()) {
    sk_test_skip("test_echo_ipv6", "no IPv6 on this host");
    return;
  }
  echo_once("[::1]:0", NULL);
}
END_TEST

START_TEST(test_echo_unix) {
  char *dir = sk_test_tmpdir();
  ck_assert_ptr_nonnull(dir);
  char address[256];
  snprintf(address, sizeof address, "unix:%s/echo.sock", dir);
  echo_once(address, NULL);
  /* destroy removed the socket file */
  ck_assert_int_ne(access(address + 5, F_OK), 0);
  sk_test_rmdir(dir);
}
END_TEST

START_TEST(test_echo_abstract_unix) {
  char address[64];
  snprintf(address, sizeof address, "unix:@sktest-%d", (int)getpid());
  echo_once(address, NULL);
}
END_TEST

/* A wildcard server answers from the address each request was sent to, so
 * connected client sockets (which filter on source) accept the reply. */
START_TEST(test_wildcard_replies_from_destination) {
  echo_once(":0", "127.0.0.1");
  if (sk_test_have_ipv6())
    echo_once(":0", "[::1]");
  echo_once("0.0.0.0:0", "127.0.0.1");
}
END_TEST

/* Send `msg` on an unconnected socket and wait for one datagram, noting
 * who sent it. Returns its length, -1 on error, -2 on timeout. */
static ssize_t ask_from(int fd, const struct sockaddr *to, socklen_t to_len, const char *msg,
                        char *reply, size_t size, struct sockaddr_storage *from) {
  if (sendto(fd, msg, strlen(msg), 0, to, to_len) != (ssize_t)strlen(msg))
    return -1;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int ready = poll(&p, 1, WAIT_MS);
  if (ready <= 0)
    return ready == 0 ? -2 : -1;
  socklen_t from_len = sizeof *from;
  ssize_t n = recvfrom(fd, reply, size - 1, 0, (struct sockaddr *)from, &from_len);
  if (n >= 0)
    reply[n] = '\0';
  return n;
}

static struct sockaddr_in ipv4(const char *host, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  ck_assert_int_eq(inet_pton(AF_INET, host, &a.sin_addr), 1);
  return a;
}

/* "1.2.3.4:port" or "[v6]:port" of an IP socket address. */
static const char *ip_text(const struct sockaddr_storage *sa, char *buf, size_t size) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    snprintf(buf, size, "%s:%d", host, port);
  } else if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    snprintf(buf, size, "[%s]:%d", host, port);
  } else {
    snprintf(buf, size, "family %d", sa->ss_family);
  }
  return buf;
}

/* A wildcard server reached at another address of this host answers from
 * that address. Over 127.0.0.1 and ::1 the kernel's default source is
 * already the right one; over 127.0.0.2 it is not (the loopback route
 * prefers 127.0.0.1), so only the packet info makes the reply acceptable
 * to a socket connected to 127.0.0.2. */
START_TEST(test_wildcard_replies_from_other_local_address) {
  static const char *const servers[] = {":0", "0.0.0.0:0"};
  static const char *const hosts[] = {"127.0.0.2", "127.0.0.3"};
  for (size_t s = 0; s < sizeof servers / sizeof servers[0]; s++)
    for (int i = 0; i < NCONFIGS; i++) {
      sk_test_udp t;
      ck_assert_int_eq(
          sk_test_udp_start_server(&t, configured(servers[s], peer_service, NULL, &configs[i])),
          SK_OK);
      for (size_t h = 0; h < sizeof hosts / sizeof hosts[0]; h++) {
        char target[64], reply[256], text[80];
        snprintf(target, sizeof target, "%s:%d", hosts[h], t.port);
        /* A connected socket takes only datagrams from the address it
         * connected to. */
        int fd = sk_test_udp_socket(target);
        ck_assert_int_ge(fd, 0);
        ssize_t n = sk_test_udp_exchange(fd, "hello", 5, reply, sizeof reply, WAIT_MS);
        ck_assert_msg(n > 0 && strncmp(reply, "hello|", 6) == 0,
                      "%s via %s (%s): no reply accepted (%zd)", servers[s], hosts[h],
                      configs[i].name, n);
        close(fd);
        /* An unconnected one sees where the reply came from. */
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        struct sockaddr_in to = ipv4(hosts[h], t.port);
        struct sockaddr_storage from;
        n = ask_from(fd, (struct sockaddr *)&to, sizeof to, "again", reply, sizeof reply, &from);
        ck_assert_int_gt(n, 0);
        ck_assert_str_eq(ip_text(&from, text, sizeof text), target);
        close(fd);
      }
      ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
    }
}
END_TEST

/* A broadcast request is answered from the server's own address on the
 * interface it came in on. A reply cannot come from the broadcast address
 * (the kernel refuses to send it), so a server that answered from the
 * request's destination would answer no broadcast at all. */
START_TEST(test_wildcard_answers_broadcast_from_unicast_address) {
  static const char *const servers[] = {":0", "0.0.0.0:0"};
  for (size_t s = 0; s < sizeof servers / sizeof servers[0]; s++)
    for (int i = 0; i < NCONFIGS; i++) {
      sk_test_udp t;
      ck_assert_int_eq(
          sk_test_udp_start_server(&t, configured(servers[s], peer_service, NULL, &configs[i])),
          SK_OK);
      int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ck_assert_int_ge(fd, 0);
      int on = 1;
      ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on), 0);
      /* Linux gives lo's 127.0.0.1/8 the broadcast address 127.255.255.255. */
      struct sockaddr_in to = ipv4("127.255.255.255", t.port);
      struct sockaddr_storage from;
      char reply[256], text[80], want[64];
      ssize_t n =
          ask_from(fd, (struct sockaddr *)&to, sizeof to, "anyone?", reply, sizeof reply, &from);
      ck_assert_msg(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_IN, 1, WAIT_MS),
                    "%s (%s): the broadcast did not reach the server", servers[s], configs[i].name);
      ck_assert_msg(n > 0, "%s (%s): no reply to a broadcast (%zd)", servers[s], configs[i].name,
                    n);
      ck_assert_msg(strncmp(reply, "anyone?|127.0.0.1:", 18) == 0, "reply was '%s'", reply);
      snprintf(want, sizeof want, "127.0.0.1:%d", t.port);
      ck_assert_str_eq(ip_text(&from, text, sizeof text), want);
      /* Several I/O threads each get a copy of a broadcast; every copy is
       * answered and none is a send error. */
      uint64_t errors = 1;
      ck_assert_int_eq(sk_udp_server_stat(t.srv, SK_STAT_DROPS_SEND_ERROR, &errors), SK_OK);
      ck_assert_uint_eq(errors, 0);
      close(fd);
      ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
    }
}
END_TEST

/* A multicast-capable interface other than lo with an IPv6 link-local
 * address, or 0. */
static unsigned ipv6_multicast_interface(void) {
  struct ifaddrs *list = NULL;
  unsigned found = 0;
  if (getifaddrs(&list) != 0)
    return 0;
  for (struct ifaddrs *i = list; i && !found; i = i->ifa_next) {
    unsigned want = IFF_UP | IFF_RUNNING | IFF_MULTICAST;
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET6 && (i->ifa_flags & want) == want &&
        !(i->ifa_flags & IFF_LOOPBACK) &&
        IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
      found = if_nametoindex(i->ifa_name);
  }
  freeifaddrs(list);
  return found;
}

/* IPv6 has no ipi_spec_dst: a request sent to a multicast group is
 * answered from an address the kernel chooses on the interface it came in
 * on, never from the group (the kernel refuses that with EINVAL).
 *
 * Linux's lo cannot carry IPv6 multicast (no IFF_MULTICAST, no multicast
 * route; even with both set by hand in a private network namespace
 * nothing is delivered), so the request goes out on a real interface with
 * a hop limit of 0: the kernel loops it back to this host's sockets and
 * then discards it, so nothing leaves the machine. Without such an
 * interface the test is skipped (sk_test_skip). */
START_TEST(test_wildcard_answers_ipv6_multicast_from_unicast_address) {
  unsigned ifindex = sk_test_have_ipv6() ? ipv6_multicast_interface() : 0;
  if (ifindex == 0) {
    sk_test_skip("test_wildcard_answers_ipv6_multicast_from_unicast_address",
                 "no IPv6 multicast interface");
    return;
  }
  static const char *const groups[] = {"ff02::1", "ff01::1"};
  for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
    for (int i = 0; i < NCONFIGS; i++) {
      sk_test_udp t;
      ck_assert_int_eq(
          sk_test_udp_start_server(&t, configured("[::]:0", peer_service, NULL, &configs[i])),
          SK_OK);
      int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ck_assert_int_ge(fd, 0);
      int hops = 0;
      ck_assert_int_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex),
                       0);
      ck_assert_int_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops), 0);
      struct sockaddr_in6 to = {
          .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)t.port), .sin6_scope_id = ifindex};
      ck_assert_int_eq(inet_pton(AF_INET6, groups[g], &to.sin6_addr), 1);
      struct sockaddr_storage from;
      char reply[256], text[80];
      ssize_t n =
          ask_from(fd, (struct sockaddr *)&to, sizeof to, "anyone?", reply, sizeof reply, &from);
      if (n == -1 && g == 0 && i == 0 && errno == ENETUNREACH) {
        sk_test_skip("test_wildcard_answers_ipv6_multicast_from_unicast_address",
                     "no IPv6 multicast route");
        close(fd);
        ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
        return;
      }
      ck_assert_msg(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_IN, 1, WAIT_MS),
                    "%s (%s): the request did not reach the server", groups[g], configs[i].name);
      ck_assert_msg(n > 0, "%s (%s): no reply to a multicast request (%zd)", groups[g],
                    configs[i].name, n);
      ck_assert_msg(strncmp(reply, "anyone?|[", 9) == 0, "reply was '%s'", reply);
      ck_assert_int_eq(from.ss_family, AF_INET6);
      const struct sockaddr_in6 *src = (const struct sockaddr_in6 *)&from;
      ck_assert_msg(!IN6_IS_ADDR_MULTICAST(&src->sin6_addr) &&
                        !IN6_IS_ADDR_UNSPECIFIED(&src->sin6_addr),
                    "reply from %s", ip_text(&from, text, sizeof text));
      ck_assert_int_eq(ntohs(src->sin6_port), t.port);
      /* The source is one of this host's addresses: a socket bound to it
       * and connected to the client works (bind fails for a foreign one). */
      int check = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      struct sockaddr_in6 local = *src;
      local.sin6_port = 0;
      ck_assert_msg(bind(check, (struct sockaddr *)&local, sizeof local) == 0,
                    "reply from %s, not a local address: %s", ip_text(&from, text, sizeof text),
                    strerror(errno));
      close(check);
      uint64_t errors = 1;
      ck_assert_int_eq(sk_udp_server_stat(t.srv, SK_STAT_DROPS_SEND_ERROR, &errors), SK_OK);
      ck_assert_uint_eq(errors, 0);
      close(fd);
      ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
    }
}
END_TEST

START_TEST(test_stale_unix_socket_replaced_other_file_kept) {
  char *dir = sk_test_tmpdir();
  char address[256];
  snprintf(address, sizeof address, "unix:%s/s.sock", dir);
  /* A socket file left behind by a crashed server is replaced... */
  int stale = socket(AF_UNIX, SOCK_DGRAM, 0);
  sk_addr un;
  ck_assert_int_eq(sk__addr_parse(&un, address), 0);
  ck_assert_int_eq(bind(stale, (struct sockaddr *)&un.ss, un.len), 0);
  close(stale);
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_OK);
  sk_udp_server_destroy(srv);
  /* ...but a regular file is never deleted. */
  FILE *f = fopen(address + 5, "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  ck_assert_int_eq(sk_udp_server_create(&srv, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), ENOTSOCK); /* not "in use": not a socket */
  sk_udp_server_destroy(srv);
  ck_assert_int_eq(access(address + 5, F_OK), 0);
  sk_test_rmdir(dir);
}
END_TEST

/* An unbound UNIX sender cannot be answered: the request is still served,
 * the reply is a counted drop, and bound clients keep being answered. */
START_TEST(test_unix_unbound_sender_is_counted_drop) {
  char *dir = sk_test_tmpdir();
  char address[256];
  snprintf(address, sizeof address, "unix:%s/u.sock", dir);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, address, sk_test_echo, NULL), SK_OK);
  int anon = socket(AF_UNIX, SOCK_DGRAM, 0);
  sk_addr un;
  ck_assert_int_eq(sk__addr_parse(&un, address), 0);
  ck_assert_int_eq(sendto(anon, "x", 1, 0, (struct sockaddr *)&un.ss, un.len), 1);
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_DROPS_NO_ADDRESS, 1, WAIT_MS));
  int fd = sk_test_udp_socket(address);
  char reply[64];
  ck_assert_int_eq(sk_test_udp_exchange(fd, "ok", 2, reply, sizeof reply, WAIT_MS), 2);
  ck_assert_str_eq(reply, "ok");
  uint64_t in = 0;
  ck_assert_int_eq(sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &in), SK_OK);
  ck_assert_uint_eq(in, 2);
  close(anon);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  sk_test_rmdir(dir);
}
END_TEST

/* 8 client sockets on threads, 125 requests each, at most 4 outstanding,
 * resending on loss; every reply must match a request of its own socket. */
#define CLIENTS 8
#define PER_CLIENT 125
#define WINDOW 4

typedef struct load_client {
  int port;
  int id;
  int verified;
  int wrong;
  int gave_up;
} load_client;

static void *load_thread(void *arg) {
  load_client *c = arg;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", c->port);
  int fd = sk_test_udp_socket(target);
  if (fd < 0) {
    c->gave_up = 1;
    return NULL;
  }
  bool answered[PER_CLIENT] = {false};
  int next = 0;    /* next request number to send for the first time */
  int pending = 0; /* sent, not yet answered */
  int resends = 0;
  char msg[64], reply[128];
  while (c->verified < PER_CLIENT && resends < 2000) {
    while (pending < WINDOW && next < PER_CLIENT) {
      int len = snprintf(msg, sizeof msg, "client %d request %d", c->id, next++);
      send(fd, msg, (size_t)len, 0);
      pending++;
    }
    ssize_t n = sk_test_udp_recv(fd, reply, sizeof reply, 200);
    if (n == -2) {
      /* Loss: resend every request still unanswered among those sent. */
      for (int i = 0; i < next; i++)
        if (!answered[i]) {
          int len = snprintf(msg, sizeof msg, "client %d request %d", c->id, i);
          send(fd, msg, (size_t)len, 0);
          resends++;
        }
      continue;
    }
    if (n < 0)
      break;
    int id = -1, k = -1;
    if (sscanf(reply, "client %d request %d", &id, &k) != 2 || id != c->id || k < 0 || k >= next) {
      c->wrong++;
      continue;
    }
    snprintf(msg, sizeof msg, "client %d request %d", c->id, k);
    if (strcmp(msg, reply) != 0) {
      c->wrong++;
      continue;
    }
    if (!answered[k]) { /* a duplicate after a resend is not a second answer */
      answered[k] = true;
      c->verified++;
      pending--;
    }
  }
  close(fd);
  return NULL;
}

static void load_config(const udp_config *c) {
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, configured("127.0.0.1:0", sk_test_echo, NULL, c)),
                   SK_OK);
  pthread_t threads[CLIENTS];
  load_client clients[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    clients[i] = (load_client){.port = t.port, .id = i};
    ck_assert_int_eq(pthread_create(&threads[i], NULL, load_thread, &clients[i]), 0);
  }
  int verified = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(threads[i], NULL);
    ck_assert_msg(clients[i].gave_up == 0 && clients[i].wrong == 0 &&
                      clients[i].verified == PER_CLIENT,
                  "%s: client %d gave up %d, wrong %d, verified %d", c->name, i, clients[i].gave_up,
                  clients[i].wrong, clients[i].verified);
    verified += clients[i].verified;
  }
  ck_assert_int_eq(verified, CLIENTS * PER_CLIENT);
  /* The counter moves just after sendmsg returns, which may be a moment
   * after the client already has the reply. */
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_OUT, CLIENTS * PER_CLIENT, WAIT_MS));
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}

/* 1,000 requests from 8 sockets under every configuration, including two
 * SO_REUSEPORT sockets feeding one worker pool. */
START_TEST(test_concurrent_clients_all_replies_verified) {
  for (int i = 0; i < NCONFIGS; i++)
    load_config(&configs[i]);
}
END_TEST

START_TEST(test_null_reply_sends_nothing) {
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", picky_service, NULL), SK_OK);
  int fd = sk_test_udp_socket(t.address);
  char reply[64];
  ck_assert_int_eq(send(fd, "silent", 6, 0), 6);
  /* Datagrams from one socket are served in order, so if "silent" had been
   * answered, that answer would arrive before the answer to "after". */
  ck_assert_int_eq(sk_test_udp_exchange(fd, "after", 5, reply, sizeof reply, WAIT_MS), 5);
  ck_assert_str_eq(reply, "after");
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_OUT, 1, WAIT_MS));
  uint64_t in = 0, out = 0;
  sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &in);
  sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_OUT, &out);
  ck_assert_uint_eq(in, 2);
  ck_assert_uint_eq(out, 1);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

typedef struct log_count {
  atomic_int warnings;
} log_count;

static void count_log(int level, const char *message, void *user) {
  log_count *c = user;
  if (level == SK_LOG_WARN && strstr(message, "127.0.0.1:"))
    atomic_fetch_add(&c->warnings, 1);
}

START_TEST(test_bad_datagrams_dropped_counted_logged) {
  log_count logs = {0};
  sk_set_log_handler(count_log, &logs);
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MAX_MESSAGE, 16), SK_OK);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, srv), SK_OK);

  int fd = sk_test_udp_socket(t.address);
  char big[17];
  memset(big, 'x', sizeof big);
  ck_assert_int_eq(send(fd, big, 17, 0), 17);  /* one byte over the maximum */
  ck_assert_int_eq(send(fd, "a\0b", 3, 0), 3); /* NUL inside */
  char reply[64];
  ck_assert_int_eq(sk_test_udp_exchange(fd, big, 16, reply, sizeof reply, WAIT_MS), 16);
  uint64_t v = 0;
  sk_udp_server_stat(srv, SK_STAT_DROPS_TRUNCATED, &v);
  ck_assert_uint_eq(v, 1);
  sk_udp_server_stat(srv, SK_STAT_DROPS_NUL, &v);
  ck_assert_uint_eq(v, 1);
  sk_udp_server_stat(srv, SK_STAT_MESSAGES_IN, &v);
  ck_assert_uint_eq(v, 1);
  sk_udp_server_stat(srv, SK_STAT_BYTES_IN, &v);
  ck_assert_uint_eq(v, 16);
  ck_assert_int_eq(atomic_load(&logs.warnings), 2);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  sk_set_log_handler(NULL, NULL);
}
END_TEST

START_TEST(test_port_in_use_is_ebind_eaddrinuse) {
  sk_udp_server *a, *b;
  ck_assert_int_eq(sk_udp_server_create(&a, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(a), SK_OK);
  int port = 0;
  ck_assert_int_eq(sk_udp_server_port(a, &port), SK_OK);
  ck_assert_int_gt(port, 0);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", port);
  ck_assert_int_eq(sk_udp_server_create(&b, address, sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(b), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
  /* SO_REUSEPORT on both lets them share the port only when both ask. */
  sk_udp_server_destroy(b);
  sk_udp_server_destroy(a);
}
END_TEST

START_TEST(test_arguments_and_options) {
  sk_udp_server *srv = (sk_udp_server *)1;
  ck_assert_int_eq(sk_udp_server_create(&srv, "nonsense", sk_test_echo, NULL), SK_EADDR);
  ck_assert_ptr_null(srv);
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", NULL, NULL), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_create(&srv, NULL, sk_test_echo, NULL), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_create(NULL, "127.0.0.1:0", sk_test_echo, NULL), SK_EINVAL);
  sk_udp_server_destroy(NULL);

  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  long long v = 0;
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_MAX_MESSAGE, &v), SK_OK);
  ck_assert_int_eq(v, 65507);
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_REUSEPORT, &v), SK_OK);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MAX_MESSAGE, 0), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MAX_MESSAGE, 65508), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_REUSEPORT, 2), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_RCVBUF, -1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, 9999, 1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_get(srv, 9999, &v), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_RCVBUF, 1 << 16), SK_OK);
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_RCVBUF, &v), SK_OK);
  ck_assert_int_eq(v, 1 << 16);
  int port;
  ck_assert_int_eq(sk_udp_server_port(srv, &port), SK_ESTATE);
  char text[128];
  ck_assert_int_eq(sk_udp_server_address(srv, text, sizeof text), SK_ESTATE);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_RCVBUF, 1 << 17), SK_ESTATE);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_ESTATE);
  ck_assert_int_eq(sk_udp_server_address(srv, text, 4), SK_EINVAL);
  uint64_t s;
  ck_assert_int_eq(sk_udp_server_stat(srv, 0, &s), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(srv, 9999, &s), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(srv, SK_STAT_MESSAGES_IN, &s), SK_OK);
  ck_assert_uint_eq(s, 0);
  sk_udp_server_destroy(srv);
}
END_TEST

START_TEST(test_run_once_and_after_stop) {
  int fds_before = sk_test_fd_count();
  /* Stopped before it ran: run refuses. */
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_stop(srv), SK_OK);
  ck_assert_int_eq(sk_udp_server_run(srv), SK_ESTATE);
  sk_udp_server_destroy(srv);

  /* Ran and stopped: run again refuses, the port stays readable. */
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  int fd = sk_test_udp_socket(t.address);
  char reply[16];
  ck_assert_int_eq(sk_test_udp_exchange(fd, "up?", 3, reply, sizeof reply, WAIT_MS), 3);
  close(fd);
  sk_udp_server_stop(t.srv);
  pthread_join(t.thread, NULL);
  ck_assert_int_eq(atomic_load(&t.rc), SK_OK);
  ck_assert_int_eq(sk_udp_server_run(t.srv), SK_ESTATE);
  ck_assert_int_eq(sk_udp_server_stop(t.srv), SK_OK); /* idempotent */
  int port = 0;
  ck_assert_int_eq(sk_udp_server_port(t.srv, &port), SK_OK);
  ck_assert_int_eq(port, t.port);
  sk_udp_server_destroy(t.srv);
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
}
END_TEST

START_TEST(test_stop_from_other_thread_returns_promptly) {
  int fds_before = sk_test_fd_count();
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  int fd = sk_test_udp_socket(t.address);
  char reply[16];
  ck_assert_int_eq(sk_test_udp_exchange(fd, "up?", 3, reply, sizeof reply, WAIT_MS), 3);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, 2000), SK_OK);
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
}
END_TEST

static sk_udp_server *signal_target;
static void on_signal(int sig) {
  (void)sig;
  sk_udp_server_stop(signal_target);
}

typedef struct signaller {
  int port;
  pthread_t main_thread;
  int answered;
} signaller;

/* Waits until the server answers, then signals the thread running it. */
static void *signal_thread(void *arg) {
  signaller *s = arg;
  char target[64], reply[16];
  snprintf(target, sizeof target, "127.0.0.1:%d", s->port);
  int fd = sk_test_udp_socket(target);
  for (int i = 0; i < 50 && !s->answered; i++)
    s->answered = sk_test_udp_exchange(fd, "hi", 2, reply, sizeof reply, 100) == 2;
  close(fd);
  pthread_kill(s->main_thread, SIGUSR1);
  return NULL;
}

START_TEST(test_stop_from_signal_handler) {
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_OK);
  signal_target = srv;
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
  signaller s = {.main_thread = pthread_self()};
  sk_udp_server_port(srv, &s.port);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, signal_thread, &s), 0);
  /* Blocks here until the handler stops the server; Check's timeout bounds it. */
  ck_assert_int_eq(sk_udp_server_run(srv), SK_OK);
  pthread_join(t, NULL);
  ck_assert_int_eq(s.answered, 1);
  sk_udp_server_destroy(srv);
  signal(SIGUSR1, SIG_DFL);
}
END_TEST

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Blocks for 100 ms, as a service that waits on a disk or another server. */
static const char *slow_service(const char *request, void *user) {
  (void)user;
  struct timespec pause = {0, 100 * 1000 * 1000};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
    ;
  return request;
}

/* 16 requests to a 100 ms service at once: 8 workers answer them all in
 * well under half the 1.6 s that one thread would need. */
START_TEST(test_pool_runs_blocking_services_in_parallel) {
  const udp_config pool8 = {"8 workers", SK_MODEL_WORKER_POOL, 8, 1};
  sk_test_udp t;
  ck_assert_int_eq(
      sk_test_udp_start_server(&t, configured("127.0.0.1:0", slow_service, NULL, &pool8)), SK_OK);
  enum { N = 16 };
  int fds[N];
  for (int i = 0; i < N; i++) {
    fds[i] = sk_test_udp_socket(t.address);
    ck_assert_int_ge(fds[i], 0);
  }
  long long start = now_ms();
  char msg[32], reply[64];
  for (int i = 0; i < N; i++) {
    int len = snprintf(msg, sizeof msg, "request %d", i);
    ck_assert_int_eq(send(fds[i], msg, (size_t)len, 0), len);
  }
  for (int i = 0; i < N; i++) {
    ck_assert_int_gt(sk_test_udp_recv(fds[i], reply, sizeof reply, WAIT_MS), 0);
    snprintf(msg, sizeof msg, "request %d", i);
    ck_assert_str_eq(reply, msg);
  }
  long long elapsed = now_ms() - start;
  ck_assert_msg(elapsed < N * 100 / 2, "16 blocking requests took %lld ms", elapsed);
  for (int i = 0; i < N; i++)
    close(fds[i]);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

START_TEST(test_start_stop_destroy_leaks_nothing) {
  int fds_before = sk_test_fd_count();
  int threads_before = sk_test_thread_baseline();
  ck_assert_int_eq(sk_udp_server_start(NULL), SK_EINVAL);
  for (int i = 0; i < NCONFIGS; i++) {
    const udp_config *c = &configs[i];
    sk_udp_server *srv = configured("127.0.0.1:0", sk_test_echo, NULL, c);
    ck_assert_int_eq(sk_udp_server_start(srv), SK_OK);
    ck_assert_int_eq(sk_udp_server_start(srv), SK_ESTATE);
    ck_assert_int_eq(sk_udp_server_run(srv), SK_ESTATE);
    char address[128], reply[16];
    ck_assert_int_eq(sk_udp_server_address(srv, address, sizeof address), SK_OK);
    int fd = sk_test_udp_socket(address);
    ck_assert_int_eq(sk_test_udp_exchange(fd, "up?", 3, reply, sizeof reply, WAIT_MS), 3);
    close(fd);
    ck_assert_int_gt(sk_test_thread_count(), threads_before);
    if (i % 2 == 0) /* destroy also stops a server that still runs */
      ck_assert_int_eq(sk_udp_server_stop(srv), SK_OK);
    sk_udp_server_destroy(srv);
    ck_assert_msg(sk_test_wait_threads(threads_before, WAIT_MS), "%s: %d threads left", c->name,
                  sk_test_thread_count());
    ck_assert_msg(sk_test_fd_count() == fds_before, "%s: descriptors leaked", c->name);
  }
  /* Stopped before it started: start refuses and nothing is left. */
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  sk_udp_server_stop(srv);
  ck_assert_int_eq(sk_udp_server_start(srv), SK_ESTATE);
  sk_udp_server_destroy(srv);
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
  ck_assert_int_eq(sk_test_thread_count(), threads_before);
}
END_TEST

static atomic_int replies_freed;

static void count_free(void *reply) {
  atomic_fetch_add(&replies_freed, 1);
  free(reply);
}

static const char *heap_service(const char *request, void *user) {
  (void)user;
  return strcmp(request, "silent") == 0 ? NULL : strdup(request);
}

/* Every non-NULL reply is handed to the free function exactly once, even
 * one that cannot be sent. */
START_TEST(test_reply_free_called_once_per_reply) {
  ck_assert_int_eq(sk_udp_server_set_reply_free(NULL, free), SK_EINVAL);
  for (int i = 0; i < NCONFIGS; i++) {
    const udp_config *c = &configs[i];
    atomic_store(&replies_freed, 0);
    sk_udp_server *srv = configured("127.0.0.1:0", heap_service, NULL, c);
    ck_assert_int_eq(sk_udp_server_set_reply_free(srv, count_free), SK_OK);
    sk_test_udp t;
    ck_assert_int_eq(sk_test_udp_start_server(&t, srv), SK_OK);
    ck_assert_int_eq(sk_udp_server_set_reply_free(srv, free), SK_ESTATE);
    int fd = sk_test_udp_socket(t.address);
    char msg[32], reply[64];
    for (int k = 0; k < 20; k++) {
      ck_assert_int_eq(send(fd, "silent", 6, 0), 6);
      int len = snprintf(msg, sizeof msg, "heap %d", k);
      ck_assert_int_eq(sk_test_udp_exchange(fd, msg, (size_t)len, reply, sizeof reply, WAIT_MS),
                       len);
      ck_assert_str_eq(reply, msg);
    }
    close(fd);
    ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_IN, 40, WAIT_MS));
    ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
    ck_assert_msg(atomic_load(&replies_freed) == 20, "%s: %d frees", c->name,
                  atomic_load(&replies_freed));
  }

  /* A reply to an unbound UNIX sender is dropped, and still freed. */
  atomic_store(&replies_freed, 0);
  char *dir = sk_test_tmpdir();
  char address[256];
  snprintf(address, sizeof address, "unix:%s/free.sock", dir);
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, address, heap_service, NULL), SK_OK);
  ck_assert_int_eq(sk_udp_server_set_reply_free(srv, count_free), SK_OK);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, srv), SK_OK);
  int anon = socket(AF_UNIX, SOCK_DGRAM, 0);
  sk_addr un;
  ck_assert_int_eq(sk__addr_parse(&un, address), 0);
  ck_assert_int_eq(sendto(anon, "x", 1, 0, (struct sockaddr *)&un.ss, un.len), 1);
  ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_DROPS_NO_ADDRESS, 1, WAIT_MS));
  close(anon);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  ck_assert_int_eq(atomic_load(&replies_freed), 1);
  sk_test_rmdir(dir);
}
END_TEST

START_TEST(test_concurrency_options) {
  sk_udp_server *srv;
  ck_assert_int_eq(sk_udp_server_create(&srv, "127.0.0.1:0", sk_test_echo, NULL), SK_OK);
  long long v = -1;
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_MODEL, &v), SK_OK);
  ck_assert_int_eq(v, SK_MODEL_EVENT_LOOP);
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_WORKERS, &v), SK_OK);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_IO_THREADS, &v), SK_OK);
  ck_assert_int_eq(v, 1);
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_DRAIN_TIMEOUT_MS, &v), SK_OK);
  ck_assert_int_eq(v, 5000);

  /* The per-connection models have no meaning for datagrams. */
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MODEL, SK_MODEL_THREAD_PER_CONNECTION), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MODEL, SK_MODEL_PROCESS_PER_CONNECTION),
                   SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MODEL, -1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MODEL, SK_MODEL_WORKER_POOL), SK_OK);
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_MODEL, &v), SK_OK);
  ck_assert_int_eq(v, SK_MODEL_WORKER_POOL);

  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_WORKERS, -1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_WORKERS, 1025), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_WORKERS, 1024), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_WORKERS, 0), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_IO_THREADS, -1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_IO_THREADS, 257), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_IO_THREADS, 256), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_IO_THREADS, 0), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, -1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, 0x80000000LL), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, 0), SK_OK);

  /* TCP-only options and counters are refused rather than ignored. */
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_FRAMING, 0), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MAX_CONNECTIONS, 1), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_get(srv, SK_OPT_MAX_INFLIGHT, &v), SK_EINVAL);
  uint64_t s = 1;
  ck_assert_int_eq(sk_udp_server_stat(srv, SK_STAT_CONNECTIONS_ACCEPTED, &s), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(srv, SK_STAT_BYTES_BUFFERED, &s), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(srv, SK_STAT_DROPS_INCOMPLETE, &s), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(srv, SK_STAT_DROPS_MULTILINE, &s), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(srv, SK_STAT_DROPS_MULTILINE + 1, &s), SK_EINVAL);
  ck_assert_int_eq(sk_udp_server_stat(srv, SK_STAT_DROPS_QUEUE_FULL, &s), SK_OK);
  ck_assert_uint_eq(s, 0);

  /* IO_THREADS 0 means one per CPU: the port is shared by as many sockets. */
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_OK);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_IO_THREADS, 2), SK_ESTATE);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_MODEL, SK_MODEL_EVENT_LOOP), SK_ESTATE);
  sk_udp_server_destroy(srv);
}
END_TEST

/* Several I/O threads on a port that another socket holds without
 * SO_REUSEPORT: binding fails as with one. */
START_TEST(test_io_threads_port_in_use_is_ebind) {
  int holder = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(holder, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  ck_assert_int_eq(getsockname(holder, (struct sockaddr *)&a, &len), 0);
  char address[64];
  snprintf(address, sizeof address, "127.0.0.1:%d", ntohs(a.sin_port));
  int fds_before = sk_test_fd_count();
  const udp_config two = {"2 I/O threads", SK_MODEL_EVENT_LOOP, 0, 2};
  sk_udp_server *srv = configured(address, sk_test_echo, NULL, &two);
  ck_assert_int_eq(sk_udp_server_listen(srv), SK_EBIND);
  ck_assert_int_eq(sk_last_os_error(), EADDRINUSE);
  sk_udp_server_destroy(srv);
  ck_assert_int_eq(sk_test_fd_count(), fds_before);
  close(holder);
}
END_TEST

/* A service that blocks until the test opens the gate (or 10 s pass, so a
 * failed test cannot leave it blocked forever). */
typedef struct gate {
  pthread_mutex_t lock;
  pthread_cond_t opened;
  bool open;
  atomic_int entered, left; /* service calls begun, and ended */
} gate;

static void gate_init(gate *g) {
  pthread_mutex_init(&g->lock, NULL);
  pthread_cond_init(&g->opened, NULL);
  g->open = false;
  atomic_init(&g->entered, 0);
  atomic_init(&g->left, 0);
}

static void gate_open(gate *g) {
  pthread_mutex_lock(&g->lock);
  g->open = true;
  pthread_cond_broadcast(&g->opened);
  pthread_mutex_unlock(&g->lock);
}

/* Once every call that entered has left the gate (a straggler the server
 * no longer waits for may still be in it): the atomic read orders its last
 * use of the lock before the destroy. */
static void gate_destroy(gate *g) {
  for (int i = 0; i < 1000 && atomic_load(&g->left) < atomic_load(&g->entered); i++) {
    struct timespec d = {0, 5 * 1000000L};
    nanosleep(&d, NULL);
  }
  ck_assert_int_eq(atomic_load(&g->left), atomic_load(&g->entered));
  pthread_cond_destroy(&g->opened);
  pthread_mutex_destroy(&g->lock);
}

static const char *gated_service(const char *request, void *user) {
  gate *g = user;
  atomic_fetch_add(&g->entered, 1);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&g->lock);
  while (!g->open && pthread_cond_timedwait(&g->opened, &g->lock, &deadline) == 0)
    ;
  pthread_mutex_unlock(&g->lock);
  atomic_fetch_add(&g->left, 1);
  return request;
}

static bool gate_entered(void *arg) {
  return atomic_load(&((gate *)arg)->entered) > 0;
}

/* One worker held in its service: requests pile up in the pool's queue
 * until its bound, and the excess is dropped and counted. */
START_TEST(test_pool_queue_full_is_counted_drop) {
  gate g;
  gate_init(&g);
  const udp_config one = {"1 worker", SK_MODEL_WORKER_POOL, 1, 1};
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, configured("127.0.0.1:0", gated_service, &g, &one)),
                   SK_OK);
  int fd = sk_test_udp_socket(t.address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(send(fd, "first", 5, 0), 5);
  ck_assert(sk_test_wait(gate_entered, &g, WAIT_MS));
  /* The kernel may drop some of a burst before the server reads it, so
   * send bursts until the server reports a queue-full drop. */
  bool full = false;
  for (int burst = 0; burst < 200 && !full; burst++) {
    for (int i = 0; i < 256; i++)
      send(fd, "more", 4, MSG_DONTWAIT);
    full = sk_test_wait_udp_stat(t.srv, SK_STAT_DROPS_QUEUE_FULL, 1, 20);
  }
  ck_assert(full);
  uint64_t in = 0;
  ck_assert_int_eq(sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &in), SK_OK);
  ck_assert_uint_eq(in, 1); /* only the first request has reached the service */
  gate_open(&g);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  gate_destroy(&g);
}
END_TEST

/* What the log says while a pool drains on stop. */
typedef struct drain_log {
  gate *gate;
  atomic_int queued;  /* from "udp: draining N queued requests" */
  atomic_int dropped; /* from "udp: N queued requests dropped" */
} drain_log;

static void on_drain_log(int level, const char *message, void *user) {
  drain_log *d = user;
  int n;
  if (sscanf(message, "udp: draining %d queued requests", &n) == 1) {
    atomic_store(&d->queued, n);
    gate_open(d->gate); /* the deadline is set: release the running service */
  } else if (sscanf(message, "udp: %d queued requests dropped", &n) == 1) {
    atomic_store(&d->dropped, n);
  }
}

/* With a drain timeout of 0, stop does not wait for the service call in
 * progress (it is left to end on its own) and drops the requests still
 * queued without running the service. */
START_TEST(test_pool_drain_timeout_drops_queued_requests) {
  int baseline = sk_test_thread_baseline();
  gate g;
  gate_init(&g);
  drain_log logs = {.gate = &g};
  sk_set_log_handler(on_drain_log, &logs);
  ck_assert_int_eq(sk_set_log_level(SK_LOG_INFO), SK_OK);
  const udp_config one = {"1 worker", SK_MODEL_WORKER_POOL, 1, 1};
  sk_udp_server *srv = configured("127.0.0.1:0", gated_service, &g, &one);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, 0), SK_OK);
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start_server(&t, srv), SK_OK);
  int fd = sk_test_udp_socket(t.address);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(send(fd, "req", 3, 0), 3);
  ck_assert(sk_test_wait(gate_entered, &g, WAIT_MS));
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  ck_assert_int_ge(atomic_load(&logs.queued), 1); /* the running request, and those after it */
  /* The worker ends once its call returns, dropping the queued requests. */
  ck_assert(sk_test_wait_threads(baseline, WAIT_MS));
  ck_assert_int_eq(atomic_load(&g.entered), 1);
  char reply[16]; /* the call outlived the drain time: its reply is discarded */
  ck_assert_int_eq(sk_test_udp_recv(fd, reply, sizeof reply, 100), -2);
  close(fd);
  sk_set_log_handler(NULL, NULL);
  sk_set_log_level(SK_LOG_WARN);
  gate_destroy(&g);
}
END_TEST

/* Requests "q0".."q<DRAIN_REQUESTS-1>" held behind a gate, each then taking
 * pause_ms; which of them reached the service is recorded. */
#define DRAIN_REQUESTS 20

typedef struct drain_service {
  gate gate;
  int pause_ms;
  atomic_bool ran[DRAIN_REQUESTS];
  atomic_int inside; /* calls running now */
} drain_service;

static const char *drain_service_run(const char *request, void *user) {
  drain_service *d = user;
  atomic_fetch_add(&d->inside, 1);
  int k = -1;
  if (sscanf(request, "q%d", &k) == 1 && k >= 0 && k < DRAIN_REQUESTS)
    atomic_store(&d->ran[k], true);
  gated_service(request, &d->gate);
  struct timespec pause = {d->pause_ms / 1000, (long)(d->pause_ms % 1000) * 1000000};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
    ;
  atomic_fetch_sub(&d->inside, 1);
  return request;
}

static bool drain_idle(void *arg) {
  return atomic_load(&((drain_service *)arg)->inside) == 0;
}

static int drain_ran(drain_service *d) {
  int n = 0;
  for (int k = 0; k < DRAIN_REQUESTS; k++)
    n += atomic_load(&d->ran[k]);
  return n;
}

static bool run_returned(void *arg) {
  return atomic_load(&((sk_test_udp *)arg)->done);
}

/* Start a one-worker pool server with the given drain timeout, have the
 * worker enter the service with q0, queue q1..q19 behind it, and make sure
 * all of them left the socket for the pool's queue. Returns the client. */
static int queue_drain_requests(sk_test_udp *t, drain_service *d, long long drain_ms) {
  const udp_config one = {"1 worker", SK_MODEL_WORKER_POOL, 1, 1};
  sk_udp_server *srv = configured("127.0.0.1:0", drain_service_run, d, &one);
  ck_assert_int_eq(sk_udp_server_set(srv, SK_OPT_DRAIN_TIMEOUT_MS, drain_ms), SK_OK);
  ck_assert_int_eq(sk_test_udp_start_server(t, srv), SK_OK);
  int fd = sk_test_udp_socket(t->address);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(send(fd, "q0", 2, 0), 2);
  ck_assert(sk_test_wait(gate_entered, &d->gate, WAIT_MS));
  char msg[16];
  for (int k = 1; k < DRAIN_REQUESTS; k++) {
    int len = snprintf(msg, sizeof msg, "q%d", k);
    ck_assert_int_eq(send(fd, msg, (size_t)len, 0), len);
  }
  /* The one I/O thread takes datagrams in order: once it has dropped this
   * one (a NUL inside), it has handed every request before it to the pool. */
  ck_assert_int_eq(send(fd, "x\0", 2, 0), 2);
  ck_assert(sk_test_wait_udp_stat(t->srv, SK_STAT_DROPS_NUL, 1, WAIT_MS));
  return fd;
}

/* With time enough to drain, stop answers every queued request before run
 * returns, though the service is released only once stop has begun. */
START_TEST(test_pool_drain_answers_every_queued_request) {
  drain_service d = {.pause_ms = 0};
  gate_init(&d.gate);
  drain_log logs = {.gate = &d.gate};
  atomic_init(&logs.queued, -1);
  sk_set_log_handler(on_drain_log, &logs);
  ck_assert_int_eq(sk_set_log_level(SK_LOG_INFO), SK_OK);
  sk_test_udp t;
  int fd = queue_drain_requests(&t, &d, 5000);
  ck_assert_int_eq(drain_ran(&d), 1);

  atomic_store(&t.stopping, true);
  ck_assert_int_eq(sk_udp_server_stop(t.srv), SK_OK); /* the log opens the gate */
  ck_assert(sk_test_wait(run_returned, &t, 2 * WAIT_MS));
  ck_assert_int_eq(atomic_load(&logs.queued), DRAIN_REQUESTS);
  ck_assert_int_eq(atomic_load(&logs.dropped), 0);
  uint64_t in = 0, out = 0;
  ck_assert_int_eq(sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &in), SK_OK);
  ck_assert_int_eq(sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_OUT, &out), SK_OK);
  ck_assert_uint_eq(in, DRAIN_REQUESTS);
  ck_assert_uint_eq(out, DRAIN_REQUESTS); /* all sent before run returned */
  ck_assert_int_eq(drain_ran(&d), DRAIN_REQUESTS);

  bool answered[DRAIN_REQUESTS] = {false};
  char reply[32];
  for (int i = 0; i < DRAIN_REQUESTS; i++) {
    ck_assert_int_gt(sk_test_udp_recv(fd, reply, sizeof reply, WAIT_MS), 0);
    int k = -1;
    ck_assert_msg(sscanf(reply, "q%d", &k) == 1 && k >= 0 && k < DRAIN_REQUESTS && !answered[k],
                  "reply '%s'", reply);
    answered[k] = true;
  }
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  close(fd);
  sk_set_log_handler(NULL, NULL);
  sk_set_log_level(SK_LOG_WARN);
  gate_destroy(&d.gate);
}
END_TEST

/* With a short drain timeout and a slow service, the requests still queued
 * when the timeout passes are dropped without running the service, and run
 * returns long before serving them all would have taken. Each call takes at
 * least 100 ms from the start of the 200 ms drain, so at most three start
 * in time: a generous bound is half of them. (The call running when the
 * timeout passes may end after run returns; the test waits for it, as its
 * service state lives on the test's stack.) */
START_TEST(test_pool_short_drain_drops_requests_not_started) {
  int baseline = sk_test_thread_baseline();
  drain_service d = {.pause_ms = 100};
  gate_init(&d.gate);
  drain_log logs = {.gate = &d.gate};
  atomic_init(&logs.queued, -1);
  sk_set_log_handler(on_drain_log, &logs);
  ck_assert_int_eq(sk_set_log_level(SK_LOG_INFO), SK_OK);
  sk_test_udp t;
  int fd = queue_drain_requests(&t, &d, 200);

  long long start = sk_test_now_ms();
  atomic_store(&t.stopping, true);
  ck_assert_int_eq(sk_udp_server_stop(t.srv), SK_OK);
  ck_assert(sk_test_wait(run_returned, &t, 2 * WAIT_MS));
  long long elapsed = sk_test_now_ms() - start;
  ck_assert_int_eq(atomic_load(&logs.queued), DRAIN_REQUESTS);
  ck_assert(sk_test_wait(drain_idle, &d, 2 * WAIT_MS));
  int ran = drain_ran(&d);
  ck_assert_msg(ran >= 1 && ran <= DRAIN_REQUESTS / 2, "%d requests reached the service", ran);
  uint64_t in = 0;
  ck_assert_int_eq(sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_IN, &in), SK_OK);
  ck_assert_uint_eq(in, (uint64_t)ran);
  ck_assert_msg(elapsed < DRAIN_REQUESTS * d.pause_ms / 2, "run took %lld ms to return", elapsed);

  /* No reply for a request the service never saw. */
  char reply[32];
  ssize_t n;
  while ((n = sk_test_udp_recv(fd, reply, sizeof reply, 0)) > 0) {
    int k = -1;
    ck_assert_msg(sscanf(reply, "q%d", &k) == 1 && k >= 0 && k < DRAIN_REQUESTS &&
                      atomic_load(&d.ran[k]),
                  "reply '%s'", reply);
  }
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  /* The worker that outlived the drain frees the server as it ends. */
  ck_assert(sk_test_wait_threads(baseline, WAIT_MS));
  close(fd);
  sk_set_log_handler(NULL, NULL);
  sk_set_log_level(SK_LOG_WARN);
  gate_destroy(&d.gate);
}
END_TEST

/* Replies with as many spaces as the request's number, or echoes it. */
static const char *size_service(const char *request, void *user) {
  (void)user;
  int n = atoi(request);
  return n > 0 ? sk_replyf("%*s", n, "") : request;
}

/* A reply too large for a datagram is a counted drop that does not disturb
 * the replies around it; on a UNIX socket, where datagrams may be larger
 * than any IP one, a large reply is delivered whole. */
START_TEST(test_large_replies) {
  static char reply[100001];
  for (int i = 0; i < NCONFIGS; i++) {
    sk_test_udp t;
    ck_assert_int_eq(
        sk_test_udp_start_server(&t, configured("127.0.0.1:0", size_service, NULL, &configs[i])),
        SK_OK);
    int fd = sk_test_udp_socket(t.address);
    ck_assert_int_eq(send(fd, "65520", 5, 0), 5); /* fits the batch, not a UDPv4 datagram */
    ck_assert_int_eq(send(fd, "70000", 5, 0), 5); /* larger than any datagram */
    ck_assert_int_eq(sk_test_udp_exchange(fd, "65507", 5, reply, sizeof reply, WAIT_MS), 65507);
    ck_assert_int_eq(sk_test_udp_exchange(fd, "ok", 2, reply, sizeof reply, WAIT_MS), 2);
    ck_assert_str_eq(reply, "ok");
    ck_assert_msg(sk_test_wait_udp_stat(t.srv, SK_STAT_DROPS_TOO_LARGE, 2, WAIT_MS), "%s",
                  configs[i].name);
    /* The counter moves just after the send, maybe after the client has
     * the reply. */
    ck_assert(sk_test_wait_udp_stat(t.srv, SK_STAT_MESSAGES_OUT, 2, WAIT_MS));
    uint64_t out = 0;
    sk_udp_server_stat(t.srv, SK_STAT_MESSAGES_OUT, &out);
    ck_assert_uint_eq(out, 2);
    close(fd);
    ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
  }
  char address[64];
  snprintf(address, sizeof address, "unix:@sktest-large-%d", (int)getpid());
  sk_test_udp t;
  ck_assert_int_eq(sk_test_udp_start(&t, address, size_service, NULL), SK_OK);
  int fd = sk_test_udp_socket(address);
  ck_assert_int_eq(sk_test_udp_exchange(fd, "100000", 6, reply, sizeof reply, WAIT_MS), 100000);
  ck_assert_int_eq(sk_test_udp_exchange(fd, "ok", 2, reply, sizeof reply, WAIT_MS), 2);
  close(fd);
  ck_assert_int_eq(sk_test_udp_stop(&t, WAIT_MS), SK_OK);
}
END_TEST

static Suite *udp_suite(void) {
  Suite *s = suite_create("udp_server");
  TCase *tc = tcase_create("udp");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_echo_ipv4);
  tcase_add_test(tc, test_echo_ipv6);
  tcase_add_test(tc, test_echo_unix);
  tcase_add_test(tc, test_echo_abstract_unix);
  tcase_add_test(tc, test_wildcard_replies_from_destination);
  tcase_add_test(tc, test_wildcard_replies_from_other_local_address);
  tcase_add_test(tc, test_wildcard_answers_broadcast_from_unicast_address);
  tcase_add_test(tc, test_wildcard_answers_ipv6_multicast_from_unicast_address);
  tcase_add_test(tc, test_stale_unix_socket_replaced_other_file_kept);
  tcase_add_test(tc, test_unix_unbound_sender_is_counted_drop);
  tcase_add_test(tc, test_concurrent_clients_all_replies_verified);
  tcase_add_test(tc, test_null_reply_sends_nothing);
  tcase_add_test(tc, test_bad_datagrams_dropped_counted_logged);
  tcase_add_test(tc, test_port_in_use_is_ebind_eaddrinuse);
  tcase_add_test(tc, test_arguments_and_options);
  tcase_add_test(tc, test_run_once_and_after_stop);
  tcase_add_test(tc, test_stop_from_other_thread_returns_promptly);
  tcase_add_test(tc, test_stop_from_signal_handler);
  tcase_add_test(tc, test_pool_runs_blocking_services_in_parallel);
  tcase_add_test(tc, test_start_stop_destroy_leaks_nothing);
  tcase_add_test(tc, test_reply_free_called_once_per_reply);
  tcase_add_test(tc, test_concurrency_options);
  tcase_add_test(tc, test_io_threads_port_in_use_is_ebind);
  tcase_add_test(tc, test_pool_queue_full_is_counted_drop);
  tcase_add_test(tc, test_pool_drain_timeout_drops_queued_requests);
  tcase_add_test(tc, test_pool_drain_answers_every_queued_request);
  tcase_add_test(tc, test_pool_short_drain_drops_requests_not_started);
  tcase_add_test(tc, test_large_replies);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return sk_test_run(udp_suite());
}
