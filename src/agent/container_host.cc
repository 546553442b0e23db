#include "agent/container_host.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "common/files.h"
#include "common/log.h"
#include "image/rootfs.h"
#include "volume/scratch_disk.h"

namespace mill::agent {

namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t);
}

// rm -rf without following symlinks or crossing into other filesystems (a rootfs
// that failed to unmount must not be emptied through its mount).
void remove_tree(const std::string& path) {
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) {
        (void)::remove(p);  // best effort: keep going past what cannot be removed
        return 0;
      },
      16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

Exit to_exit(const runtime::ExitStatus& s) { return Exit{s.code, s.signal, s.oom_killed}; }

// The files of a container's dir describe something a reboot ends anyway.
constexpr Durability kNoSync = Durability::kProcessCrash;

}  // namespace

ContainerHost::ContainerHost(ContainerHostOptions options, image::ImageStore& images,
                             network::NodeNetwork& network, runtime::Runtime& runtime,
                             volume::VolumeManager& volumes)
    : options_(std::move(options)),
      images_(images),
      network_(network),
      runtime_(runtime),
      volumes_(volumes),
      spares_(options_.alloc_root, options_.spare_disk_size, options_.spare_disks) {
  ::mkdir(options_.alloc_root.c_str(), 0700);
}

void ContainerHost::set_registries(std::map<std::string, model::RegistryLogin> registries) {
  std::lock_guard lock(mutex_);
  registries_ = std::move(registries);
}

Result<void> ContainerHost::remove_volume(const std::string& name) {
  auto removed = volumes_.remove(name);
  if (!removed && removed.error().code == ErrorCode::kNotFound) return {};
  return removed;
}

Result<void> ContainerHost::pull(const std::string& image) {
  MILL_TRY(images_.pull(image));
  return {};
}

std::optional<model::RegistryLogin> ContainerHost::login_for(const std::string& host) const {
  std::lock_guard lock(mutex_);
  auto it = registries_.find(host);
  if (it == registries_.end()) return std::nullopt;
  return it->second;
}

Result<void> ContainerHost::write_files(const model::Allocation& a, const std::string& gateway) {
  const std::string d = dir(a.id);
  MILL_TRY(write_file_atomic(d + "/hosts",
                             "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
                                 a.ip + "\t" + a.id + " " + a.id + ".mill\n",
                             0644, kNoSync));
  // The node's DNS server on the bridge answers .mill names and forwards the rest.
  MILL_TRY(write_file_atomic(d + "/resolv.conf",
                             "nameserver " + gateway + "\nsearch mill\noptions ndots:1\n", 0644,
                             kNoSync));
  MILL_TRY(write_file_atomic(d + "/hostname", a.id + "\n", 0644, kNoSync));
  return {};
}

Result<Started> ContainerHost::start(const model::Allocation& a,
                                     const std::function<void()>& starting) {
  auto t0 = Clock::now();
  auto image = images_.pull(a.spec.image);
  if (!image) return Unexpected(image.error());
  images_.acquire(image->digest);
  Started out;
  out.image_digest = image->digest;
  out.pull_duration = since(t0);
  starting();
  auto t1 = Clock::now();

  auto fail = [&](const Error& e) -> Result<Started> {
    teardown(a.id);
    images_.release(image->digest);
    return Unexpected(e);
  };
  // No spare disk is made while this start runs (it would take a core from it).
  spares_.starting();
  struct SparesGuard {
    volume::SpareDisks& spares;
    ~SparesGuard() { spares.started(); }
  } spares_guard{spares_};
  const std::string d = dir(a.id);
  // The dir of a spare disk (with the disk mounted in it) becomes the allocation's.
  const bool spare_disk = a.spec.disk > 0 && spares_.take(d, a.spec.disk);
  if (!spare_disk && ::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail({ErrorCode::kIo, "cannot create " + d});
  }
  if (auto w = write_file_atomic(d + "/image", image->digest, 0600, kNoSync); !w)
    return fail(w.error());
  auto endpoint = network_.attach(a.id, a.ip);
  if (!endpoint && endpoint.error().code == ErrorCode::kAlreadyExists) {
    (void)network_.detach(a.id);  // left from an earlier, interrupted start
    endpoint = network_.attach(a.id, a.ip);
  }
  if (!endpoint) return fail(endpoint.error());
  // However this start ends, the network may make its spare namespaces again.
  struct StartedGuard {
    network::NodeNetwork& net;
    ~StartedGuard() { net.started(); }
  } started_guard{network_};
  if (auto w = write_files(a, endpoint->gateway); !w) return fail(w.error());
  // With `disk`, the writable layer is a filesystem of its own of that size.
  std::string layer = d;
  if (spare_disk) {
    layer = d + "/disk";
  } else if (a.spec.disk > 0) {
    auto disk = volume::make_scratch_disk(d, a.spec.disk);
    if (!disk) return fail({disk.error().code, "disk: " + disk.error().message});
    layer = *disk;
  }
  if (auto m =
          image::mount_rootfs(image->layer_dirs, layer + "/upper", layer + "/work", d + "/rootfs");
      !m) {
    return fail(m.error());
  }

  runtime::ContainerSpec spec;
  spec.id = a.id;
  spec.hostname = a.id;
  spec.command = a.spec.command;
  spec.env = a.spec.env;
  // Like Nomad's NOMAD_* variables: what a task may want to know about itself.
  spec.env.try_emplace("MILL_TASK_ID", a.id);
  spec.env.try_emplace("MILL_ALLOC_IP", a.ip);
  if (a.spec.port) spec.env.try_emplace("PORT", std::to_string(*a.spec.port));
  spec.cpu = a.spec.cpu;
  spec.memory_bytes = a.spec.memory;
  spec.init = a.spec.init;
  spec.init_path = options_.init_path;
  spec.rootfs = d + "/rootfs";
  spec.netns_path = endpoint->netns_path;
  spec.hosts_path = d + "/hosts";
  spec.resolv_conf_path = d + "/resolv.conf";
  spec.hostname_path = d + "/hostname";
  spec.cgroup_path = options_.cgroup_parent + "/" + a.id;
  // Volumes: made (at their size) the first time an allocation lands here, mounted
  // again after a restart; their data dir is bound into the container.
  for (const auto& v : a.spec.volumes) {
    auto vol = volumes_.ensure(v.name, v.size);
    if (!vol) return fail({vol.error().code, "volume " + v.name + ": " + vol.error().message});
    spec.mounts.push_back({vol->path, v.path, v.read_only});
  }
  auto state = runtime_.start(spec, image->config);
  if (!state) return fail(state.error());
  out.pid = state->pid;
  out.start_duration = since(t1);
  return out;
}

Result<Exit> ContainerHost::wait(const std::string& id, std::chrono::milliseconds timeout) {
  return to_exit(MILL_TRY(runtime_.wait(id, timeout)));
}

Result<void> ContainerHost::on_exit(const std::string& id, ExitCallback on_end) {
  return runtime_.on_exit(
      id, [cb = std::move(on_end)](const std::string&, Result<runtime::ExitStatus> exit) {
        if (!exit) return cb(Unexpected(exit.error()));
        cb(to_exit(*exit));
      });
}

Result<Exit> ContainerHost::stop(const std::string& id, std::chrono::milliseconds grace) {
  return to_exit(MILL_TRY(runtime_.stop(id, grace)));
}

Result<Usage> ContainerHost::usage(const model::Allocation& alloc) {
  auto u = MILL_TRY(runtime_.usage(alloc.id));
  Usage out{u.cpu_seconds, u.memory_bytes, {}};
  for (const auto& v : alloc.spec.volumes) {
    if (auto info = volumes_.info(v.name)) out.volume_used[v.name] = info->used_bytes;
  }
  return out;
}

runtime::ExecCommand ContainerHost::exec_command(const std::string& id,
                                                 const std::vector<std::string>& args) {
  return runtime_.exec_command(id, args);
}

// Everything but the log and the runtime's record of the exit.
void ContainerHost::teardown(const std::string& id) {
  if (auto r = runtime_.remove(id, runtime::KeepLogs::kYes);
      !r && r.error().code != ErrorCode::kNotFound) {
    log::warn("agent: removing container " + id + ": " + r.error().message);
  }
  const std::string d = dir(id);
  if (auto u = image::unmount_rootfs(d + "/rootfs"); !u) {
    log::warn("agent: unmounting " + d + "/rootfs: " + u.error().message);
  }
  if (auto r = volume::remove_scratch_disk(d); !r) {
    log::warn("agent: disk of " + id + ": " + r.error().message);
  }
  if (auto n = network_.detach(id); !n)
    log::warn("agent: network of " + id + ": " + n.error().message);
  remove_tree(d);
}

void ContainerHost::release(const std::string& id, const std::string& image_digest) {
  teardown(id);
  if (!image_digest.empty()) images_.release(image_digest);
}

void ContainerHost::forget(const std::string& id) {
  teardown(id);
  if (auto r = runtime_.remove(id, runtime::KeepLogs::kNo);
      !r && r.error().code != ErrorCode::kNotFound) {
    log::warn("agent: removing the log of " + id + ": " + r.error().message);
  }
}

std::vector<Adopted> ContainerHost::adopt() {
  std::vector<Adopted> out;
  std::set<std::string> running;
  auto list = runtime_.list();
  if (!list) {
    log::warn("agent: cannot list containers: " + list.error().message);
    return out;
  }
  for (const auto& c : *list) {
    Adopted a;
    a.id = c.id;
    a.pid = c.pid;
    a.running = c.running;
    if (c.exit) a.exit = to_exit(*c.exit);
    if (c.running) {
      running.insert(c.id);
      // Hold its image again (in-use counts are not kept across restarts).
      if (auto digest = read_file(dir(c.id) + "/image")) images_.acquire(trim(*digest));
    }
    out.push_back(std::move(a));
  }
  // Networks, mounts and dirs of containers that are no longer running.
  for (const auto& id : network_.attached()) {
    if (!running.contains(id)) teardown(id);
  }
  if (DIR* d = ::opendir(options_.alloc_root.c_str())) {
    std::vector<std::string> stale;
    while (auto* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != ".." && !running.contains(name)) stale.push_back(name);
    }
    ::closedir(d);
    for (const auto& id : stale) {
      if (!volume::is_spare_disk_dir(id)) {
        teardown(id);
        continue;
      }
      // A spare an earlier process made and never handed out.
      if (auto r = volume::remove_scratch_disk(dir(id)); !r) {
        log::warn("agent: spare disk " + id + ": " + r.error().message);
      }
      remove_tree(dir(id));
    }
  }
  spares_.start();
  return out;
}

std::string ContainerHost::log_dir(const std::string& id) const {
  return options_.runtime_state_root + "/" + id + "/log";
}

}  // namespace mill::agent
