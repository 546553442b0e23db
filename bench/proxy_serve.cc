// Runs Mill's ingress proxy (the same proxy::Proxy the agent runs) in front of one
// upstream, for bench/proxy.sh: wrk then measures it against nginx in front of the
// same upstream. Prints "ready PORT" once listening; runs until SIGTERM or SIGINT.
//
//   mill_proxy_serve --upstream 127.0.0.1:8081 [--listen 127.0.0.1:0] [--threads 1]

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "proxy/proxy.h"

int main(int argc, char** argv) {
  std::string upstream, listen = "127.0.0.1:0";
  int threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--upstream")) upstream = argv[i + 1];
    if (!std::strcmp(argv[i], "--listen")) listen = argv[i + 1];
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  if (upstream.empty()) {
    std::fprintf(stderr, "usage: %s --upstream HOST:PORT [--listen ADDR] [--threads N]\n", argv[0]);
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  mill::proxy::ProxyOptions o;
  o.http_listen = listen;
  o.https_listen = "";
  o.threads = threads;
  auto proxy = mill::proxy::Proxy::start(o);
  if (!proxy) {
    std::fprintf(stderr, "%s\n", proxy.error().message.c_str());
    return 1;
  }
  mill::proxy::ProxyRoute route;
  route.name = "bench";
  route.host = "*";
  route.path = "/";
  route.upstreams = {upstream};
  (*proxy)->set_routes({route});
  std::printf("ready %u\n", (*proxy)->http_port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  (*proxy)->stop();
  return 0;
}
