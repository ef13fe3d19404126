/* test_addr.c -- address strings: every accepted form, round trips, rejects, formatting. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "sockkit.h"

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)
#define SUN_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* Parse text placed right against an unmapped page (as picohttpparser's
 * tests do), so reading one byte past its NUL crashes the test at once. */
static int guarded(sk_addr *out, sk_adopt *adopt, const char *text) {
  if (text == NULL)
    return adopt ? sk__addr_parse_adopt(adopt, NULL) : sk__addr_parse(out, NULL);
  long page = sysconf(_SC_PAGESIZE);
  size_t n = strlen(text) + 1;
  ck_assert_uint_le(n, (size_t)page);
  char *mem =
      mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(mem, MAP_FAILED);
  ck_assert_int_eq(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
  char *copy = mem + page - n;
  memcpy(copy, text, n);
  int rc = adopt ? sk__addr_parse_adopt(adopt, copy) : sk__addr_parse(out, copy);
  munmap(mem, 2 * (size_t)page);
  return rc;
}

static int guarded_parse(sk_addr *out, const char *text) {
  return guarded(out, NULL, text);
}

/* A string of n copies of c after a prefix, in a static buffer. */
static const char *repeat(const char *prefix, char c, size_t n) {
  static char buf[512];
  size_t p = strlen(prefix);
  ck_assert_uint_lt(p + n, sizeof buf);
  memcpy(buf, prefix, p);
  memset(buf + p, c, n);
  buf[p + n] = '\0';
  return buf;
}

static const struct sockaddr_in *v4(const sk_addr *a) {
  return (const struct sockaddr_in *)&a->ss;
}
static const struct sockaddr_in6 *v6(const sk_addr *a) {
  return (const struct sockaddr_in6 *)&a->ss;
}
static const struct sockaddr_un *un(const sk_addr *a) {
  return (const struct sockaddr_un *)&a->ss;
}

/* ---- accepted forms ---- */

START_TEST(parse_ipv4) {
  sk_addr a;
  ck_assert_int_eq(guarded_parse(&a, "127.0.0.1:8848"), 0);
  ck_assert_int_eq(a.ss.ss_family, AF_INET);
  ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in));
  ck_assert(!a.wildcard);
  ck_assert_uint_eq(v4(&a)->sin_port, htons(8848));
  ck_assert_uint_eq(v4(&a)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));

  ck_assert_int_eq(guarded_parse(&a, "255.255.255.255:65535"), 0);
  ck_assert_uint_eq(v4(&a)->sin_port, htons(65535));
  ck_assert_uint_eq(v4(&a)->sin_addr.s_addr, htonl(0xffffffffu));

  /* Leading zeros in the port are fine within five digits. */
  ck_assert_int_eq(guarded_parse(&a, "10.1.2.3:00080"), 0);
  ck_assert_uint_eq(v4(&a)->sin_port, htons(80));
  const unsigned char want[4] = {10, 1, 2, 3};
  ck_assert_mem_eq(&v4(&a)->sin_addr, want, 4);

  ck_assert_int_eq(guarded_parse(&a, "0.0.0.0:0"), 0);
  ck_assert_uint_eq(v4(&a)->sin_port, 0);
  ck_assert_uint_eq(v4(&a)->sin_addr.s_addr, htonl(INADDR_ANY));
}
END_TEST

START_TEST(parse_ipv6) {
  sk_addr a;
  ck_assert_int_eq(guarded_parse(&a, "[::1]:8848"), 0);
  ck_assert_int_eq(a.ss.ss_family, AF_INET6);
  ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in6));
  ck_assert(!a.wildcard);
  ck_assert_uint_eq(v6(&a)->sin6_port, htons(8848));
  ck_assert_mem_eq(&v6(&a)->sin6_addr, &in6addr_loopback, 16);

  ck_assert_int_eq(guarded_parse(&a, "[2001:db8::a:1]:443"), 0);
  const unsigned char want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 1};
  ck_assert_mem_eq(&v6(&a)->sin6_addr, want, 16);
  ck_assert_uint_eq(v6(&a)->sin6_port, htons(443));

  ck_assert_int_eq(guarded_parse(&a, "[::ffff:192.0.2.1]:7"), 0);
  ck_assert(IN6_IS_ADDR_V4MAPPED(&v6(&a)->sin6_addr));
  ck_assert_uint_eq(v6(&a)->sin6_port, htons(7));
}
END_TEST

START_TEST(parse_port_only) {
  const char *forms[] = {":8848", "8848"};
  for (size_t i = 0; i < 2; i++) {
    sk_addr a;
    ck_assert_int_eq(guarded_parse(&a, forms[i]), 0);
    ck_assert_int_eq(a.ss.ss_family, AF_INET6);
    ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in6));
    ck_assert(a.wildcard);
    ck_assert_uint_eq(v6(&a)->sin6_port, htons(8848));
    ck_assert_mem_eq(&v6(&a)->sin6_addr, &in6addr_any, 16);
  }
  sk_addr a;
  ck_assert_int_eq(guarded_parse(&a, "0"), 0);
  ck_assert(a.wildcard);
  ck_assert_uint_eq(v6(&a)->sin6_port, 0);
}
END_TEST

START_TEST(parse_unix_path) {
  sk_addr a;
  ck_assert_int_eq(guarded_parse(&a, "unix:/tmp/sk.sock"), 0);
  ck_assert_int_eq(a.ss.ss_family, AF_UNIX);
  ck_assert_str_eq(un(&a)->sun_path, "/tmp/sk.sock");
  ck_assert_uint_eq(a.len, SUN_OFF + strlen("/tmp/sk.sock") + 1);
  ck_assert(!a.wildcard);

  ck_assert_int_eq(guarded_parse(&a, "unix:rel.sock"), 0);
  ck_assert_str_eq(un(&a)->sun_path, "rel.sock");
  ck_assert_uint_eq(a.len, SUN_OFF + strlen("rel.sock") + 1);

  /* The longest path leaves room for its NUL in sun_path. */
  ck_assert_int_eq(guarded_parse(&a, repeat("unix:", 'p', SUN_MAX - 1)), 0);
  ck_assert_uint_eq(strlen(un(&a)->sun_path), SUN_MAX - 1);
  ck_assert_uint_eq(a.len, sizeof(struct sockaddr_un));
}
END_TEST

START_TEST(parse_unix_abstract) {
  sk_addr a;
  ck_assert_int_eq(guarded_parse(&a, "unix:@sockkit"), 0);
  ck_assert_int_eq(a.ss.ss_family, AF_UNIX);
  ck_assert_int_eq(un(&a)->sun_path[0], '\0');
  ck_assert_mem_eq(un(&a)->sun_path + 1, "sockkit", 7);
  /* No trailing NUL: the kernel counts every byte up to len as the name. */
  ck_assert_uint_eq(a.len, SUN_OFF + 1 + 7);

  ck_assert_int_eq(guarded_parse(&a, repeat("unix:@", 'n', SUN_MAX - 1)), 0);
  ck_assert_uint_eq(a.len, sizeof(struct sockaddr_un));
  ck_assert_int_eq(un(&a)->sun_path[SUN_MAX - 1], 'n');
}
END_TEST

/* ---- round trips: parse, format, compare with what inet_ntop prints ---- */

static const struct {
  const char *in, *out; /* out NULL: the same as in */
} trips[] = {
    {"127.0.0.1:8848", NULL},
    {"0.0.0.0:0", NULL},
    {"255.255.255.255:65535", NULL},
    {"[::1]:8848", NULL},
    {"[::]:0", NULL},
    {"[2001:db8::1]:443", NULL},
    {"[fe80::1:2]:1", NULL},
    {"[2001:db8:0:1:1:1:1:1]:80", NULL}, /* a single zero group is not compressed */
    {"[2001:db8::1:0:0:1]:80", NULL},    /* the first of two equal runs is */
    {"unix:/tmp/sk.sock", NULL},
    {"unix:relative.sock", NULL},
    {"unix:@name", NULL},
    {"unix:@sockkit-test.0", NULL},
    {"10.0.0.1:00080", "10.0.0.1:80"},
    {"[2001:0DB8:0000:0000::0001]:80", "[2001:db8::1]:80"},
    {"[::ffff:192.0.2.1]:7", "192.0.2.1:7"},
    {":8848", "[::]:8848"},
    {"8848", "[::]:8848"},
};

START_TEST(round_trip) {
  const char *in = trips[_i].in;
  const char *want = trips[_i].out != NULL ? trips[_i].out : in;
  sk_addr a;
  char buf[SK__ADDR_TEXT_MAX];
  int rc = guarded_parse(&a, in);
  ck_assert_msg(rc == 0, "parse \"%s\" gave %d", in, rc);
  rc = sk__addr_format((const struct sockaddr *)&a.ss, a.len, buf, sizeof buf);
  ck_assert_msg(rc == 0, "format \"%s\" gave %d", in, rc);
  ck_assert_msg(strcmp(buf, want) == 0, "\"%s\" formats as \"%s\", want \"%s\"", in, buf, want);
}
END_TEST

/* ---- rejected inputs ---- */

static const struct {
  const char *name, *text;
} rejects[] = {
    {"NULL", NULL},
    {"empty", ""},
    {"port too large", "127.0.0.1:65536"},
    {"port-only too large", ":65536"},
    {"bare port too large", "99999"},
    {"six digits", "123456"},
    {"six digits with zeros", "000080"},
    {"missing port", "127.0.0.1"},
    {"empty port", "127.0.0.1:"},
    {"colon only", ":"},
    {"junk after port", "127.0.0.1:80x"},
    {"second port", "127.0.0.1:80:90"},
    {"trailing space", "127.0.0.1:80 "},
    {"leading space", " 127.0.0.1:80"},
    {"space before port", "127.0.0.1: 80"},
    {"space in bare port", "80 "},
    {"IPv6 without brackets", "::1:80"},
    {"unclosed bracket", "[::1:80"},
    {"brackets without port", "[::1]"},
    {"brackets with empty port", "[::1]:"},
    {"junk after bracket", "[::1]x:80"},
    {"junk after v6 port", "[::1]:80]"},
    {"empty brackets", "[]:80"},
    {"nested brackets", "[[::1]]:80"},
    {"IPv4 in brackets", "[127.0.0.1]:80"},
    {"IPv6 zone", "[fe80::1%lo]:80"},
    {"hostname", "localhost:80"},
    {"unix empty path", "unix:"},
    {"unix empty abstract", "unix:@"},
    {"negative port", "127.0.0.1:-1"},
    {"negative bare port", "-1"},
    {"plus sign", "+80"},
    {"hex port", "127.0.0.1:0x50"},
    {"hex bare port", "0x50"},
    {"octet over 255", "256.1.1.1:80"},
    {"three octets", "1.2.3:80"},
    {"short form", "127.1:80"},
    {"five octets", "1.2.3.4.5:80"},
    {"empty octet", "1..3.4:80"},
    {"IPv6 in v4 position", "::1"},
};

START_TEST(rejected) {
  sk_addr a;
  int rc = guarded_parse(&a, rejects[_i].text);
  ck_assert_msg(rc == SK_EADDR, "%s: \"%s\" gave %d, want SK_EADDR", rejects[_i].name,
                rejects[_i].text != NULL ? rejects[_i].text : "(null)", rc);
  /* A failed parse leaves nothing half-filled behind. */
  ck_assert_int_eq(a.ss.ss_family, AF_UNSPEC);
  ck_assert_uint_eq(a.len, 0);
}
END_TEST

START_TEST(rejected_unix_too_long) {
  sk_addr a;
  ck_assert_int_eq(guarded_parse(&a, repeat("unix:", 'p', SUN_MAX)), SK_EADDR);
  ck_assert_int_eq(guarded_parse(&a, repeat("unix:@", 'n', SUN_MAX)), SK_EADDR);
}
END_TEST

/* ---- formatting of addresses the kernel hands us ---- */

START_TEST(format_v4_mapped) {
  struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
  ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:10.0.0.1", &s.sin6_addr), 1);
  char buf[SK__ADDR_TEXT_MAX];
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&s, sizeof s, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, "10.0.0.1:40000");
}
END_TEST

START_TEST(format_unix_unnamed) {
  struct sockaddr_un s = {.sun_family = AF_UNIX};
  char buf[SK__ADDR_TEXT_MAX];
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&s, SUN_OFF, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, "unix:");
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&s, sizeof(sa_family_t), buf, sizeof buf), 0);
  ck_assert_str_eq(buf, "unix:");
}
END_TEST

START_TEST(format_unix_bounded_by_len) {
  char buf[SK__ADDR_TEXT_MAX];
  /* A path that fills sun_path has no NUL; len must bound the read. */
  struct sockaddr_un s = {.sun_family = AF_UNIX};
  memset(s.sun_path, 'p', SUN_MAX);
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&s, sizeof s, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, repeat("unix:", 'p', SUN_MAX));
  /* A len past the struct (from a sockaddr_storage) is clamped. */
  struct sockaddr_storage ss;
  memset(&ss, 'p', sizeof ss);
  ss.ss_family = AF_UNIX;
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&ss, sizeof ss, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, repeat("unix:", 'p', SUN_MAX));

  /* Abstract: the name length comes from len; the full name fits the limit. */
  memset(s.sun_path, 'n', SUN_MAX);
  s.sun_path[0] = '\0';
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&s, SUN_OFF + 4, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, "unix:@nnn");
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&s, sizeof s, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, repeat("unix:@", 'n', SUN_MAX - 1));
  /* NUL bytes inside an abstract name are shown as '@', as ss(8) does. */
  memcpy(s.sun_path, "\0a\0b", 4);
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&s, SUN_OFF + 4, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, "unix:@a@b");
}
END_TEST

START_TEST(format_errors) {
  char buf[SK__ADDR_TEXT_MAX];
  sk_addr a;
  ck_assert_int_eq(sk__addr_parse(&a, "127.0.0.1:80"), 0);
  const struct sockaddr *sa = (const struct sockaddr *)&a.ss;
  ck_assert_int_eq(sk__addr_format(NULL, a.len, buf, sizeof buf), SK_EINVAL);
  ck_assert_int_eq(sk__addr_format(sa, a.len, NULL, sizeof buf), SK_EINVAL);
  ck_assert_int_eq(sk__addr_format(sa, a.len, buf, 0), SK_EINVAL);
  ck_assert_int_eq(sk__addr_format(sa, a.len - 1, buf, sizeof buf), SK_EINVAL);
  struct sockaddr_storage unknown = {.ss_family = AF_UNSPEC};
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&unknown, sizeof unknown, buf, sizeof buf),
                   SK_EINVAL);
  unknown.ss_family = AF_PACKET;
  ck_assert_int_eq(sk__addr_format((struct sockaddr *)&unknown, sizeof unknown, buf, sizeof buf),
                   SK_EINVAL);
}
END_TEST

/* Each form must fail with one byte too few and succeed with exactly enough. */
static const char *const tight[] = {"127.0.0.1:80", "[::1]:80",   "[::ffff:1.2.3.4]:5",
                                    "unix:/tmp/s",  "unix:@name", "unix:"};

START_TEST(format_buffer_too_small) {
  sk_addr a;
  char buf[SK__ADDR_TEXT_MAX], want[SK__ADDR_TEXT_MAX];
  const struct sockaddr *sa = (const struct sockaddr *)&a.ss;
  if (strcmp(tight[_i], "unix:") == 0) {
    memset(&a, 0, sizeof a);
    a.ss.ss_family = AF_UNIX;
    a.len = SUN_OFF;
  } else {
    ck_assert_int_eq(sk__addr_parse(&a, tight[_i]), 0);
  }
  ck_assert_int_eq(sk__addr_format(sa, a.len, want, sizeof want), 0);
  size_t need = strlen(want) + 1;
  memset(buf, 'x', sizeof buf);
  ck_assert_msg(sk__addr_format(sa, a.len, buf, need - 1) == SK_EINVAL, "%s in %zu bytes",
                tight[_i], need - 1);
  ck_assert_msg(buf[need - 1] == 'x', "%s wrote past its buffer", tight[_i]);
  ck_assert_int_eq(sk__addr_format(sa, a.len, buf, need), 0);
  ck_assert_str_eq(buf, want);
}
END_TEST

/* A sockaddr inside a byte buffer is only 2-byte aligned; reading it must
 * not assume more (UBSan's alignment check catches it if it does). */
START_TEST(misaligned) {
  _Alignas(8) unsigned char raw[2 + sizeof(struct sockaddr_in6)];
  sk_addr a;
  char buf[SK__ADDR_TEXT_MAX];
  ck_assert_int_eq(sk__addr_parse(&a, "[2001:db8::1]:443"), 0);
  memcpy(raw + 2, &a.ss, a.len);
  const struct sockaddr *sa = (const struct sockaddr *)(void *)(raw + 2);
  ck_assert_int_eq(sk__addr_format(sa, a.len, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, "[2001:db8::1]:443");
  ck_assert_int_eq(sk__addr_port(sa), 443);
  ck_assert_int_eq(sk__addr_parse(&a, "192.0.2.9:53"), 0);
  memcpy(raw + 2, &a.ss, a.len);
  ck_assert_int_eq(sk__addr_format(sa, a.len, buf, sizeof buf), 0);
  ck_assert_str_eq(buf, "192.0.2.9:53");
  ck_assert_int_eq(sk__addr_port(sa), 53);
}
END_TEST

START_TEST(port) {
  sk_addr a;
  ck_assert_int_eq(sk__addr_parse(&a, "127.0.0.1:8848"), 0);
  ck_assert_int_eq(sk__addr_port((struct sockaddr *)&a.ss), 8848);
  ck_assert_int_eq(sk__addr_parse(&a, "[::1]:65535"), 0);
  ck_assert_int_eq(sk__addr_port((struct sockaddr *)&a.ss), 65535);
  ck_assert_int_eq(sk__addr_parse(&a, "4242"), 0);
  ck_assert_int_eq(sk__addr_port((struct sockaddr *)&a.ss), 4242);
  ck_assert_int_eq(sk__addr_parse(&a, "unix:/tmp/s"), 0);
  ck_assert_int_eq(sk__addr_port((struct sockaddr *)&a.ss), 0);
  ck_assert_int_eq(sk__addr_port(NULL), 0);
}
END_TEST

/* ---- sockets to adopt: "fd:N", "systemd", "systemd:NAME" ---- */

START_TEST(parse_adopt) {
  sk_adopt a;
  ck_assert_int_eq(guarded(NULL, &a, "fd:0"), 0);
  ck_assert_int_eq(a.kind, SK_ADOPT_FD);
  ck_assert_int_eq(a.fd, 0);
  ck_assert_int_eq(guarded(NULL, &a, "fd:2147483647"), 0);
  ck_assert_int_eq(a.fd, 2147483647);
  ck_assert_int_eq(guarded(NULL, &a, "fd:0042"), 0);
  ck_assert_int_eq(a.fd, 42);
  ck_assert_int_eq(guarded(NULL, &a, "systemd"), 0);
  ck_assert_int_eq(a.kind, SK_ADOPT_SYSTEMD);
  ck_assert_str_eq(a.name, "");
  ck_assert_int_eq(guarded(NULL, &a, "systemd:web api"), 0);
  ck_assert_str_eq(a.name, "web api");
  ck_assert_int_eq(guarded(NULL, &a, repeat("systemd:", 'n', 255)), 0);
  ck_assert_uint_eq(strlen(a.name), 255);
  /* Only servers adopt: for the address parser these are no addresses. */
  sk_addr addr;
  ck_assert_int_eq(guarded_parse(&addr, "fd:3"), SK_EADDR);
  ck_assert_int_eq(guarded_parse(&addr, "systemd"), SK_EADDR);
  ck_assert(sk__addr_is_adopt_text("fd:"));
  ck_assert(sk__addr_is_adopt_text("systemd:x"));
  ck_assert(!sk__addr_is_adopt_text("systemdx"));
  ck_assert(!sk__addr_is_adopt_text("unix:/fd:3"));
}
END_TEST

static const char *const adopt_rejects[] = {
    NULL,       "fd:",         "fd:-1",      "fd:3x",         "fd: 3",
    "fd:+3",    "fd:0x10",     "fd:3 ",      "fd:2147483648", "fd:99999999999999999999",
    "systemd:", "systemd:a:b", "systemd:\t", "systemd:\x7f",  "systemd:\xc3\xa9",
    "unix:/x",
};

START_TEST(rejected_adopt) {
  sk_adopt a;
  memset(&a, 0x55, sizeof a);
  ck_assert_int_eq(guarded(NULL, &a, adopt_rejects[_i]), SK_EADDR);
  ck_assert_int_eq(a.kind, SK_ADOPT_NONE); /* zeroed */
  ck_assert_int_eq(guarded(NULL, &a, repeat("systemd:", 'n', 256)), SK_EADDR);
}
END_TEST

#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

static Suite *addr_suite(void) {
  Suite *s = suite_create("addr");
  TCase *tc = tcase_create("addr");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, parse_ipv4);
  tcase_add_test(tc, parse_ipv6);
  tcase_add_test(tc, parse_port_only);
  tcase_add_test(tc, parse_unix_path);
  tcase_add_test(tc, parse_unix_abstract);
  tcase_add_loop_test(tc, round_trip, 0, COUNT(trips));
  tcase_add_loop_test(tc, rejected, 0, COUNT(rejects));
  tcase_add_test(tc, rejected_unix_too_long);
  tcase_add_test(tc, format_v4_mapped);
  tcase_add_test(tc, format_unix_unnamed);
  tcase_add_test(tc, format_unix_bounded_by_len);
  tcase_add_test(tc, format_errors);
  tcase_add_loop_test(tc, format_buffer_too_small, 0, COUNT(tight));
  tcase_add_test(tc, misaligned);
  tcase_add_test(tc, port);
  tcase_add_test(tc, parse_adopt);
  tcase_add_loop_test(tc, rejected_adopt, 0, COUNT(adopt_rejects));
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(addr_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
