/* loadgen.c -- load generator for line-framed echo servers: closed-loop TCP
 * with pipelining, UDP with loss timeouts, and idle connections for memory;
 * verifies every reply byte for byte and prints one result line. */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Every message starts with the sender's index and its sequence number in
 * hex, "IIIIIIII SSSSSSSSSSSSSSSS ", then filler, then '\n'. UDP replies are
 * matched to requests by that header, so UDP needs the whole of it. */
#define HEADER_LEN 26
#define EVENT_BATCH 256
#define READ_SIZE 65536
/* Idle mode: connections set up at once, so that the listen backlog of any
 * server keeps up and no SYN waits for a retransmission. */
#define IDLE_BATCH 256

enum mode { MODE_TCP, MODE_UDP, MODE_IDLE };

typedef struct options {
  enum mode mode;
  struct sockaddr_in addr;
  int conns;
  int size;
  int depth;
  double duration;
  double warmup;
  int timeout_ms;
  int server_pid;
  double settle;
} options;

/* ---- latency histogram ------------------------------------------------ */

/* Log-linear buckets over nanoseconds: 32 per power of two (3 % wide),
 * exact below 32 ns. */
#define SUB_BITS 5
#define SUB_COUNT (1 << SUB_BITS)
#define BUCKETS (64 * SUB_COUNT)

static uint64_t histogram[BUCKETS];
static uint64_t recorded;

static int bucket_of(uint64_t ns) {
  if (ns < SUB_COUNT)
    return (int)ns;
  int msb = 63 - __builtin_clzll(ns);
  int shift = msb - SUB_BITS;
  return ((shift + 1) << SUB_BITS) + (int)((ns >> shift) - SUB_COUNT);
}

/* The middle of a bucket, in nanoseconds. */
static double bucket_value(int b) {
  if (b < SUB_COUNT)
    return b;
  int shift = (b >> SUB_BITS) - 1;
  uint64_t low = (uint64_t)((b & (SUB_COUNT - 1)) + SUB_COUNT) << shift;
  return (double)low + (double)(UINT64_C(1) << shift) / 2;
}

static void record(uint64_t ns) {
  histogram[bucket_of(ns)]++;
  recorded++;
}

static double percentile_us(double p) {
  if (recorded == 0)
    return 0;
  uint64_t rank = (uint64_t)(p * (double)recorded);
  if (rank >= recorded)
    rank = recorded - 1;
  uint64_t seen = 0;
  for (int b = 0; b < BUCKETS; b++) {
    seen += histogram[b];
    if (seen > rank)
      return bucket_value(b) / 1000.0;
  }
  return 0;
}

/* ---- clocks and the server's /proc ---------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double own_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Fields of /proc/PID/stat after the command name: state is field 3. */
typedef struct proc_stat {
  int ppid;
  unsigned long long utime, stime, cutime, cstime;
} proc_stat;

static bool read_stat(int pid, proc_stat *st) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name may hold spaces and parentheses: skip to the last ')'. */
  char *p = strrchr(buf, ')');
  return p && sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                     &st->ppid, &st->utime, &st->stime, &st->cutime, &st->cstime) == 5;
}

/* CPU seconds of a single-threaded process from /proc/PID/schedstat, in
 * nanoseconds: /proc/PID/stat rounds each process down to whole clock
 * ticks, which loses most of the time of 512 busy children. */
static double schedstat_s(int pid, const proc_stat *st) {
  char path[64];
  unsigned long long ns;
  snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
  FILE *f = fopen(path, "r");
  int ok = f && fscanf(f, "%llu", &ns) == 1;
  if (f)
    fclose(f);
  return ok ? (double)ns / 1e9 : (double)(st->utime + st->stime) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds (user + system) of the server: its threads and its reaped
 * children (/proc/PID/stat), and its children still running (the fork
 * model serves in children). */
static double server_cpu_s(int pid) {
  proc_stat st;
  if (pid <= 0 || !read_stat(pid, &st))
    return 0;
  double cpu = (double)(st.utime + st.stime + st.cutime + st.cstime) / (double)sysconf(_SC_CLK_TCK);
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (!isdigit((unsigned char)e->d_name[0]))
      continue;
    proc_stat child;
    int child_pid = atoi(e->d_name);
    if (read_stat(child_pid, &child) && child.ppid == pid)
      cpu += schedstat_s(child_pid, &child);
  }
  if (d)
    closedir(d);
  return cpu;
}

/* Busy and stolen CPU time of the whole machine, from /proc/stat: the
 * time other processes took, and the time the hypervisor took, tell a
 * disturbed run from a clean one. */
typedef struct machine_cpu {
  double busy_s;
  double steal_s;
} machine_cpu;

static machine_cpu read_machine_cpu(void) {
  machine_cpu m = {0, 0};
  unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
  FILE *f = fopen("/proc/stat", "r");
  if (!f)
    return m;
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait,
             &irq, &softirq, &steal) == 8) {
    double hz = (double)sysconf(_SC_CLK_TCK);
    m.busy_s = (double)(user + nice + sys + irq + softirq) / hz;
    m.steal_s = (double)steal / hz;
  }
  fclose(f);
  return m;
}

static long server_rss_kb(int pid) {
  char path[64], line[256];
  long kb = -1;
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

/* ---- messages --------------------------------------------------------- */

static void put_hex(char *dst, uint64_t v, int digits) {
  static const char hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; i--, v >>= 4)
    dst[i] = hex[v & 15];
}

/* Message `seq` of sender `id`, `size` bytes ending in '\n'. The filler
 * depends on both, so a reply from another request or connection, or one
 * with a byte out of place, never matches. */
static void make_message(char *dst, int size, uint32_t id, uint64_t seq) {
  char header[HEADER_LEN];
  put_hex(header, id, 8);
  header[8] = ' ';
  put_hex(header + 9, seq, 16);
  header[25] = ' ';
  int body = size - 1;
  int n = body < HEADER_LEN ? body : HEADER_LEN;
  memcpy(dst, header, (size_t)n);
  for (int i = n; i < body; i++)
    dst[i] = (char)('a' + (id + seq + (uint64_t)i) % 26);
  dst[body] = '\n';
}

static uint64_t parse_seq(const char *msg) {
  uint64_t v = 0;
  for (int i = 9; i < 25; i++) {
    char c = msg[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0)
      return UINT64_MAX;
    v = v << 4 | (uint64_t)d;
  }
  return v;
}

/* ---- run state ---------------------------------------------------------- */

/* One TCP connection or UDP socket. */
typedef struct peer {
  int fd;
  uint32_t id;
  uint64_t next_seq;  /* the next request to send */
  uint64_t reply_seq; /* TCP: the request the next reply answers */
  int rx_off;         /* TCP: bytes of that reply seen so far */
  int tx_len;         /* TCP: bytes queued the socket has not taken */
  int tx_off;
  bool want_out;
  char *expect;       /* TCP: the reply being received */
  char *tx;           /* TCP: queued requests */
  uint64_t *sent_at;  /* per slot seq % depth: when it was sent */
  uint64_t *slot_seq; /* UDP: the request in each slot, or UINT64_MAX */
} peer;

static options opt;
static peer *peers;
static int epfd;
static char *scratch;

/* Counters of the measured window (errors count all the time). */
static bool measuring;
static uint64_t completed, errors, lost, late;

static void fail(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void report_mismatch(peer *p, const char *what) {
  errors++;
  if (errors <= 5)
    fprintf(stderr, "loadgen: %s %u: %s (reply to request %" PRIu64 ")\n",
            opt.mode == MODE_UDP ? "socket" : "connection", p->id, what, p->reply_seq);
}

/* A connected socket, non-blocking after the connect, in the epoll set. */
static int open_socket(int type, uint32_t index) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  int on = 1;
  if (fd < 0)
    fail("socket");
  if (connect(fd, (struct sockaddr *)&opt.addr, sizeof opt.addr) != 0)
    fail("connect");
  if (type == SOCK_STREAM && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0)
    fail("setsockopt TCP_NODELAY");
  if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0)
    fail("fcntl");
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = index};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
    fail("epoll_ctl");
  return fd;
}

static void init_peer(peer *p, uint32_t index, int type) {
  memset(p, 0, sizeof *p);
  p->id = index;
  p->fd = open_socket(type, index);
  p->sent_at = calloc((size_t)opt.depth, sizeof *p->sent_at);
  if (type == SOCK_STREAM) {
    p->expect = malloc((size_t)opt.size);
    p->tx = malloc((size_t)opt.size * (size_t)opt.depth);
  } else {
    p->slot_seq = malloc((size_t)opt.depth * sizeof *p->slot_seq);
  }
  if (!p->sent_at || (type == SOCK_STREAM ? !p->expect || !p->tx : !p->slot_seq))
    fail("malloc");
}

static void set_events(peer *p, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.u32 = p->id};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, p->fd, &ev) != 0)
    fail("epoll_ctl");
}

/* A connection that went wrong leaves the run; its errors are counted. */
static void drop(peer *p) {
  close(p->fd);
  p->fd = -1;
}

/* ---- TCP ---------------------------------------------------------------- */

/* Send what is queued; wait for EPOLLOUT if the socket is full. */
static void tcp_flush(peer *p) {
  while (p->tx_off < p->tx_len) {
    ssize_t n = send(p->fd, p->tx + p->tx_off, (size_t)(p->tx_len - p->tx_off), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) {
        if (!p->want_out)
          set_events(p, EPOLLIN | EPOLLOUT);
        p->want_out = true;
        return;
      }
      report_mismatch(p, strerror(errno));
      drop(p);
      return;
    }
    p->tx_off += (int)n;
  }
  p->tx_off = p->tx_len = 0;
  if (p->want_out)
    set_events(p, EPOLLIN);
  p->want_out = false;
}

/* Queue `count` new requests, stamped with `now`, and send them. */
static void tcp_send(peer *p, int count, uint64_t now) {
  for (int i = 0; i < count; i++) {
    make_message(p->tx + p->tx_len, opt.size, p->id, p->next_seq);
    p->sent_at[p->next_seq % (uint64_t)opt.depth] = now;
    p->next_seq++;
    p->tx_len += opt.size;
  }
  tcp_flush(p);
}

/* One read: check each byte against the reply owed, then send as many new
 * requests as replies completed, keeping `depth` in flight. */
static void tcp_read(peer *p) {
  ssize_t n = recv(p->fd, scratch, READ_SIZE, 0);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN)
      return;
    report_mismatch(p, n == 0 ? "closed by the server" : strerror(errno));
    drop(p);
    return;
  }
  uint64_t now = now_ns();
  int done = 0;
  for (ssize_t i = 0; i < n;) {
    if (p->rx_off == 0)
      make_message(p->expect, opt.size, p->id, p->reply_seq);
    int k = opt.size - p->rx_off;
    if (k > n - i)
      k = (int)(n - i);
    if (memcmp(scratch + i, p->expect + p->rx_off, (size_t)k) != 0) {
      report_mismatch(p, "reply differs from the request");
      drop(p);
      return;
    }
    p->rx_off += k;
    i += k;
    if (p->rx_off == opt.size) {
      if (measuring) {
        completed++;
        record(now - p->sent_at[p->reply_seq % (uint64_t)opt.depth]);
      }
      p->rx_off = 0;
      p->reply_seq++;
      done++;
    }
  }
  if (p->reply_seq > p->next_seq) {
    report_mismatch(p, "more replies than requests");
    drop(p);
    return;
  }
  if (done && opt.mode == MODE_TCP)
    tcp_send(p, done, now);
}

/* ---- UDP ---------------------------------------------------------------- */

static void udp_send(peer *p, int slot, uint64_t now) {
  make_message(scratch, opt.size, p->id, p->next_seq);
  p->slot_seq[slot] = p->next_seq++;
  p->sent_at[slot] = now;
  /* A datagram the socket refuses is found by the loss timeout. */
  (void)send(p->fd, scratch, (size_t)opt.size, MSG_DONTWAIT);
}

static void udp_read(peer *p) {
  static char expect[65536];
  for (;;) {
    ssize_t n = recv(p->fd, scratch, READ_SIZE, MSG_DONTWAIT);
    if (n < 0) {
      if (errno != EAGAIN) {
        p->reply_seq = UINT64_MAX;
        report_mismatch(p, strerror(errno));
      }
      return;
    }
    uint64_t now = now_ns();
    uint64_t seq = n == opt.size ? parse_seq(scratch) : UINT64_MAX;
    p->reply_seq = seq;
    int slot = -1;
    for (int k = 0; k < opt.depth && seq != UINT64_MAX; k++)
      if (p->slot_seq[k] == seq)
        slot = k;
    if (slot < 0) {
      if (seq < p->next_seq)
        late++; /* its request timed out and was replaced */
      else
        report_mismatch(p, "reply to no request");
      continue;
    }
    make_message(expect, opt.size, p->id, seq);
    if (memcmp(expect, scratch, (size_t)opt.size) != 0) {
      report_mismatch(p, "reply differs from the request");
      continue;
    }
    if (measuring) {
      completed++;
      record(now - p->sent_at[slot]);
    }
    udp_send(p, slot, now);
  }
}

/* Requests unanswered for longer than the timeout count as lost and are
 * replaced, so a lost datagram never stalls its socket. */
static void udp_expire(uint64_t now) {
  uint64_t limit = (uint64_t)opt.timeout_ms * 1000000u;
  for (int i = 0; i < opt.conns; i++)
    for (int k = 0; k < opt.depth; k++)
      if (now - peers[i].sent_at[k] > limit) {
        if (measuring)
          lost++;
        udp_send(&peers[i], k, now);
      }
}

/* ---- the measured run ------------------------------------------------- */

static void run_load(void) {
  struct epoll_event events[EVENT_BATCH];
  bool udp = opt.mode == MODE_UDP;
  uint64_t start = now_ns();

  for (int i = 0; i < opt.conns; i++) {
    init_peer(&peers[i], (uint32_t)i, udp ? SOCK_DGRAM : SOCK_STREAM);
    if (udp)
      for (int k = 0; k < opt.depth; k++)
        udp_send(&peers[i], k, start);
    else
      tcp_send(&peers[i], opt.depth, start);
  }
  uint64_t t0 = now_ns() + (uint64_t)(opt.warmup * 1e9);
  uint64_t t1 = 0, end = 0, last_expire = start;
  double cpu0 = 0, own0 = 0;
  machine_cpu machine0 = {0, 0};
  for (;;) {
    /* Busy-poll: the load generator has a CPU of its own, and waking a
     * sleeping vCPU costs tens of microseconds on a virtual machine, which
     * would make the generator, not the server, set the pace. */
    int n = epoll_wait(epfd, events, EVENT_BATCH, 0);
    if (n < 0 && errno != EINTR)
      fail("epoll_wait");
    for (int i = 0; i < n; i++) {
      peer *p = &peers[events[i].data.u32];
      if (p->fd < 0)
        continue;
      if (udp)
        udp_read(p);
      else if (events[i].events & EPOLLOUT)
        tcp_flush(p);
      else
        tcp_read(p);
    }
    uint64_t now = now_ns();
    if (udp && now - last_expire > 5000000u) {
      udp_expire(now);
      last_expire = now;
    }
    if (!measuring && now >= t0) {
      cpu0 = server_cpu_s(opt.server_pid);
      own0 = own_cpu_s();
      machine0 = read_machine_cpu();
      memset(histogram, 0, sizeof histogram);
      recorded = completed = lost = late = 0;
      measuring = true;
      t0 = now_ns();
      t1 = t0 + (uint64_t)(opt.duration * 1e9);
    } else if (measuring && now >= t1) {
      end = now;
      break;
    }
  }
  double secs = (double)(end - t0) / 1e9;
  double cpu = opt.server_pid > 0 ? server_cpu_s(opt.server_pid) - cpu0 : 0;
  double own = own_cpu_s() - own0;
  machine_cpu machine = read_machine_cpu();
  printf("mode=%s conns=%d size=%d depth=%d secs=%.3f requests=%" PRIu64 " rps=%.0f"
         " p50_us=%.1f p99_us=%.1f p999_us=%.1f errors=%" PRIu64,
         udp ? "udp" : "tcp", opt.conns, opt.size, opt.depth, secs, completed,
         (double)completed / secs, percentile_us(0.5), percentile_us(0.99), percentile_us(0.999),
         errors);
  if (udp)
    printf(" lost=%" PRIu64 " late=%" PRIu64, lost, late);
  if (opt.server_pid > 0)
    printf(" server_cpu_s=%.3f server_us_per_req=%.3f", cpu,
           completed ? cpu * 1e6 / (double)completed : 0.0);
  /* Without the server's pid its time shows up as "other". */
  printf(" client_cpu_s=%.3f other_cpu_s=%.2f steal_s=%.2f\n", own,
         machine.busy_s - machine0.busy_s - cpu - own, machine.steal_s - machine0.steal_s);
}

/* ---- idle connections ------------------------------------------------- */

/* Open connections in batches; each echoes one request and then stays
 * open and silent. Reports the server's resident memory per connection:
 * the difference between one such connection and all of them. */
static void run_idle(void) {
  struct epoll_event events[EVENT_BATCH];
  long before = -1;

  for (int first = 0; first < opt.conns;) {
    int batch = first == 0 ? 1 : IDLE_BATCH;
    if (batch > opt.conns - first)
      batch = opt.conns - first;
    for (int i = first; i < first + batch; i++) {
      init_peer(&peers[i], (uint32_t)i, SOCK_STREAM);
      tcp_send(&peers[i], 1, now_ns());
    }
    int waiting = batch;
    uint64_t deadline = now_ns() + 10 * 1000000000ull;
    while (waiting > 0 && now_ns() < deadline) {
      int n = epoll_wait(epfd, events, EVENT_BATCH, 100);
      for (int i = 0; i < n; i++) {
        peer *p = &peers[events[i].data.u32];
        if (p->fd < 0)
          continue;
        uint64_t seen = p->reply_seq;
        tcp_read(p);
        if (p->reply_seq != seen || p->fd < 0)
          waiting--;
      }
    }
    if (waiting > 0) {
      errors += (uint64_t)waiting;
      fprintf(stderr, "loadgen: %d connections got no reply\n", waiting);
    }
    first += batch;
    if (before < 0) {
      usleep((useconds_t)(opt.settle * 1e6));
      before = server_rss_kb(opt.server_pid);
    }
  }
  usleep((useconds_t)(opt.settle * 1e6));
  long after = server_rss_kb(opt.server_pid);
  printf("mode=idle conns=%d rss_before_kb=%ld rss_after_kb=%ld bytes_per_conn=%.1f errors=%" PRIu64
         "\n",
         opt.conns, before, after,
         opt.conns > 1 ? (double)(after - before) * 1024.0 / (opt.conns - 1) : 0.0, errors);
}

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *out) {
  fputs("Usage: loadgen --tcp|--udp|--idle [OPTIONS] HOST:PORT\n"
        "Drive a line echo server and print one line of key=value results.\n"
        "\n"
        "  --tcp            closed-loop TCP: each connection keeps DEPTH requests in\n"
        "                   flight and sends one more for each reply\n"
        "  --udp            UDP: each socket keeps DEPTH datagrams in flight; one\n"
        "                   unanswered for TIMEOUT ms counts as lost and is replaced\n"
        "  --idle           open CONNS connections, echo one request on each, keep\n"
        "                   them open and report the server's memory per connection\n"
        "                   (needs --server-pid)\n"
        "  -c, --conns N    connections or sockets (default 1)\n"
        "  -s, --size S     message size in bytes, newline included (default 64;\n"
        "                   UDP needs at least 27)\n"
        "  -d, --depth D    requests in flight per connection (default 1)\n"
        "  -t, --duration T measured seconds (default 5)\n"
        "  -w, --warmup W   seconds before measuring (default 1)\n"
        "  --timeout MS     UDP loss timeout (default 200)\n"
        "  --server-pid PID also report the server's CPU time (user + system, its\n"
        "                   children included) per request over the measured window\n"
        "  --settle S       idle: seconds to wait before reading memory (default 0.5)\n"
        "\n"
        "Every reply is checked byte for byte. Output keys: rps, p50_us, p99_us,\n"
        "p999_us (latency), errors (wrong, missing or extra bytes, connections\n"
        "closed), lost and late (UDP), server_us_per_req, client_cpu_s,\n"
        "other_cpu_s (CPU time every other process on the machine took in the\n"
        "window) and steal_s (time the hypervisor took).\n"
        "Exit status: 0, 1 on a setup failure, 2 for bad arguments, 3 if any\n"
        "reply was wrong.\n",
        out);
}

static double number(const char *text, double min, double max) {
  char *end;
  double v = strtod(text, &end);
  if (end == text || *end || v < min || v > max) {
    fprintf(stderr, "loadgen: bad number '%s' (range %g..%g)\n", text, min, max);
    exit(2);
  }
  return v;
}

static void parse_args(int argc, char **argv) {
  static const struct option longopts[] = {
      {"tcp", no_argument, NULL, 'T'},
      {"udp", no_argument, NULL, 'U'},
      {"idle", no_argument, NULL, 'I'},
      {"conns", required_argument, NULL, 'c'},
      {"size", required_argument, NULL, 's'},
      {"depth", required_argument, NULL, 'd'},
      {"duration", required_argument, NULL, 't'},
      {"warmup", required_argument, NULL, 'w'},
      {"timeout", required_argument, NULL, 'o'},
      {"server-pid", required_argument, NULL, 'p'},
      {"settle", required_argument, NULL, 'S'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int c;

  opt = (options){.mode = -1,
                  .conns = 1,
                  .size = 64,
                  .depth = 1,
                  .duration = 5,
                  .warmup = 1,
                  .timeout_ms = 200,
                  .settle = 0.5};
  while ((c = getopt_long(argc, argv, "c:s:d:t:w:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'T':
      opt.mode = MODE_TCP;
      break;
    case 'U':
      opt.mode = MODE_UDP;
      break;
    case 'I':
      opt.mode = MODE_IDLE;
      break;
    case 'c':
      opt.conns = (int)number(optarg, 1, 1000000);
      break;
    case 's':
      opt.size = (int)number(optarg, 2, 65507);
      break;
    case 'd':
      opt.depth = (int)number(optarg, 1, 4096);
      break;
    case 't':
      opt.duration = number(optarg, 0.01, 86400);
      break;
    case 'w':
      opt.warmup = number(optarg, 0, 86400);
      break;
    case 'o':
      opt.timeout_ms = (int)number(optarg, 1, 600000);
      break;
    case 'p':
      opt.server_pid = (int)number(optarg, 1, 1 << 30);
      break;
    case 'S':
      opt.settle = number(optarg, 0, 60);
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      usage(stderr);
      exit(2);
    }
  }
  const char *target = optind == argc - 1 ? argv[optind] : NULL;
  const char *colon = target ? strrchr(target, ':') : NULL;
  char host[64];
  if ((int)opt.mode < 0 || !colon || (size_t)(colon - target) >= sizeof host ||
      (opt.mode == MODE_UDP && opt.size <= HEADER_LEN) ||
      (opt.mode == MODE_IDLE && opt.server_pid <= 0)) {
    usage(stderr);
    exit(2);
  }
  memcpy(host, target, (size_t)(colon - target));
  host[colon - target] = '\0';
  opt.addr.sin_family = AF_INET;
  opt.addr.sin_port = htons((uint16_t)number(colon + 1, 1, 65535));
  if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1) {
    fprintf(stderr, "loadgen: not an IPv4 address: %s\n", host);
    exit(2);
  }
}

int main(int argc, char **argv) {
  struct rlimit rl;

  parse_args(argc, argv);
  /* Thousands of connections need as many descriptors as allowed. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  peers = calloc((size_t)opt.conns, sizeof *peers);
  scratch = malloc(READ_SIZE);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (!peers || !scratch || epfd < 0)
    fail("setup");
  if (opt.mode == MODE_IDLE)
    run_idle();
  else
    run_load();
  fflush(stdout);
  return errors ? 3 : 0;
}
