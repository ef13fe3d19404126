/* consumer.c -- a program built against the installed library, as a user
 * would build it; the install test compiles it through pkg-config and CMake. */
#include <sockkit.h>
#include <stdio.h>

static const char *echo(const char *request, void *user) {
  (void)user;
  return request;
}

/* Report a failed check and make the test fail. */
static int fail(const char *what, int status) {
  fprintf(stderr, "consumer: %s failed: %d (%s)\n", what, status, sk_strerror(status));
  return 1;
}

int main(void) {
  if (sk_version() != SK_VERSION_NUMBER) {
    fprintf(stderr, "consumer: header version %d, library version %u\n", SK_VERSION_NUMBER,
            sk_version());
    return 1;
  }
  const char *message = sk_strerror(SK_EBIND);
  if (message == NULL || message[0] == '\0') {
    fprintf(stderr, "consumer: sk_strerror(SK_EBIND) is empty\n");
    return 1;
  }

  sk_udp_server *srv = NULL;
  int rc = sk_udp_server_create(&srv, "127.0.0.1:0", echo, NULL);
  if (rc != SK_OK)
    return fail("sk_udp_server_create", rc);
  rc = sk_udp_server_listen(srv);
  if (rc != SK_OK) {
    sk_udp_server_destroy(srv);
    return fail("sk_udp_server_listen", rc);
  }
  int port = 0;
  rc = sk_udp_server_port(srv, &port);
  sk_udp_server_destroy(srv);
  if (rc != SK_OK)
    return fail("sk_udp_server_port", rc);
  if (port == 0) {
    fprintf(stderr, "consumer: bound port is 0\n");
    return 1;
  }
  printf("consumer: libsockkit %s, UDP server bound to port %d\n", sk_version_string(), port);
  return 0;
}
