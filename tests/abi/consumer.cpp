// consumer.cpp -- a C++ program using libsockkit, compiled with g++: the
// header must work in C++ (extern "C" linkage, no C-only constructs), and a
// C++ function must work as the service and as a client.
#include <sockkit.h>

#include <cstddef>
#include <cstdio>
#include <cstring>

namespace {

// A C++ function with C++ linkage serves as the service callback.
const char *shout(const char *request, void *user) {
  static_cast<void>(user);
  return sk_replyf("%s!", request);
}

int failed(const char *what, int status) {
  std::fprintf(stderr, "consumer.cpp: %s failed: %s (%s)\n", what, sk_status_name(status),
               sk_strerror(status));
  return 1;
}

// A UDP server binds a free port on loopback and is destroyed.
int udp_server() {
  sk_udp_server *srv = nullptr;
  int rc = sk_udp_server_create(&srv, "127.0.0.1:0", shout, nullptr);
  if (rc != SK_OK)
    return failed("sk_udp_server_create", rc);
  int port = 0;
  rc = sk_udp_server_listen(srv);
  if (rc == SK_OK)
    rc = sk_udp_server_port(srv, &port);
  sk_udp_server_destroy(srv);
  if (rc != SK_OK)
    return failed("sk_udp_server_listen", rc);
  return port > 0 ? 0 : failed("sk_udp_server_port", SK_ESTATE);
}

// A TCP server on its own threads answers one request from a TCP client.
int tcp_round_trip() {
  sk_tcp_server *srv = nullptr;
  int rc = sk_tcp_server_create(&srv, "127.0.0.1:0", shout, nullptr);
  if (rc != SK_OK)
    return failed("sk_tcp_server_create", rc);
  char address[SK_ADDRSTRLEN];
  if ((rc = sk_tcp_server_set(srv, SK_OPT_FRAMING, SK_FRAME_LENGTH)) != SK_OK ||
      (rc = sk_tcp_server_set(srv, SK_OPT_MODEL, SK_MODEL_EVENT_LOOP)) != SK_OK ||
      (rc = sk_tcp_server_listen(srv)) != SK_OK ||
      (rc = sk_tcp_server_address(srv, address, sizeof address)) != SK_OK ||
      (rc = sk_tcp_server_start(srv)) != SK_OK) {
    sk_tcp_server_destroy(srv);
    return failed("starting the TCP server", rc);
  }

  sk_tcp_client *c = nullptr;
  const char *reply = nullptr;
  rc = sk_tcp_client_create(&c, address);
  if (rc == SK_OK)
    rc = sk_tcp_client_set(c, SK_OPT_FRAMING, SK_FRAME_LENGTH);
  if (rc == SK_OK)
    rc = sk_tcp_client_request(c, "hello", &reply);
  int status = rc == SK_OK ? 0 : failed("the TCP request", rc);
  if (status == 0 && std::strcmp(reply, "hello!") != 0) {
    std::fprintf(stderr, "consumer.cpp: reply \"%s\", expected \"hello!\"\n", reply);
    status = 1;
  }
  if (status == 0)
    std::printf("consumer.cpp: %s answered \"%s\"\n", address, reply);
  // The binary twin (1.1): a pointer and a length each way.
  const void *bytes = nullptr;
  std::size_t len = 0;
  if (status == 0 && (rc = sk_tcp_client_request_bytes(c, "bytes", 5, &bytes, &len)) != SK_OK)
    status = failed("the TCP bytes request", rc);
  if (status == 0 && (len != 6 || std::memcmp(bytes, "bytes!", 6) != 0)) {
    std::fprintf(stderr, "consumer.cpp: a bytes reply of %zu bytes, expected \"bytes!\"\n", len);
    status = 1;
  }
  sk_tcp_client_destroy(c);
  sk_tcp_server_destroy(srv); // stops the server and joins its threads
  return status;
}

} // namespace

int main() {
  if (sk_version() != SK_VERSION_NUMBER) {
    std::fprintf(stderr, "consumer.cpp: header %d, library %u\n", SK_VERSION_NUMBER, sk_version());
    return 1;
  }
  if (std::strcmp(sk_strerror(SK_EBIND), "unknown status") == 0)
    return failed("sk_strerror", SK_EBIND);
  sk_status status = SK_OK; // the enums are usable as C++ types
  sk_log_level level = SK_LOG_WARN;
  if (sk_set_log_level(level) != status)
    return failed("sk_set_log_level", SK_EINVAL);
  if (udp_server() != 0 || tcp_round_trip() != 0)
    return 1;
  std::printf("consumer.cpp: libsockkit %s works from C++\n", sk_version_string());
  return 0;
}
