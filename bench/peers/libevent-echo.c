/* libevent-echo.c -- peer: line echo server on libevent with bufferevents,
 * the way its documentation teaches: complete lines move from the input
 * buffer to the output buffer, and the bufferevent writes them. */
#define _GNU_SOURCE

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

static void on_read(struct bufferevent *bev, void *arg) {
  (void)arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  struct evbuffer *out = bufferevent_get_output(bev);

  for (;;) {
    size_t eol_len;
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
    if (eol.pos < 0)
      break;
    evbuffer_remove_buffer(in, out, (size_t)eol.pos + eol_len);
  }
  if (evbuffer_get_length(in) > MAX_LINE)
    bufferevent_free(bev);
}

static void on_event(struct bufferevent *bev, short events, void *arg) {
  (void)arg;
  if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                      int len, void *arg) {
  (void)sa;
  (void)len;
  (void)arg;
  struct event_base *base = evconnlistener_get_base(listener);
  peer_nodelay(fd);
  struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    evutil_closesocket(fd);
    return;
  }
  bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
  bufferevent_enable(bev, EV_READ);
}

int main(int argc, char **argv) {
  peer_options opts;

  peer_parse_args(&opts, argc, argv);
  if (opts.udp) {
    fprintf(stderr, "%s: UDP is not served by this peer\n", argv[0]);
    return 2;
  }
  int fd = peer_listen(&opts);
  struct event_base *base = event_base_new();
  struct evconnlistener *listener =
      base ? evconnlistener_new(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, 0, fd) : NULL;
  if (!listener) {
    fprintf(stderr, "%s: cannot create the event base\n", argv[0]);
    return 1;
  }
  event_base_dispatch(base);
  return 0;
}
