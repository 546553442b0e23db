#include "image/manifest.h"

#include <gtest/gtest.h>

#include "image/challenge.h"
#include "net/http.h"

namespace mill::image {
namespace {

std::string digest(char c) { return "sha256:" + std::string(64, c); }

std::string manifest_json(std::string_view media_type, std::string_view config_type,
                          std::string_view layer_type) {
  std::string mt = media_type.empty() ? "" : R"("mediaType":")" + std::string(media_type) + R"(",)";
  return R"({"schemaVersion":2,)" + mt + R"("config":{"mediaType":")" + std::string(config_type) +
         R"(","digest":")" + digest('c') + R"(","size":123},"layers":[{"mediaType":")" +
         std::string(layer_type) + R"(","digest":")" + digest('1') +
         R"(","size":1000},{"mediaType":")" + std::string(layer_type) + R"(","digest":")" +
         digest('2') + R"(","size":2000}],"annotations":{"x":"y"}})";
}

std::string index_json(std::string_view media_type) {
  return R"({"schemaVersion":2,"mediaType":")" + std::string(media_type) +
         R"(","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         digest('a') +
         R"(","size":500,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},)" +
         R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + digest('b') +
         R"(","size":501,"platform":{"os":"linux","architecture":"amd64"}},)" +
         R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + digest('d') +
         R"(","size":9,"platform":{"os":"unknown","architecture":"unknown"}}]})";
}

TEST(Manifest, OciAndDockerManifests) {
  struct {
    std::string_view type, config, layer;
  } cases[] = {
      {kOciManifest, kOciConfig, "application/vnd.oci.image.layer.v1.tar+gzip"},
      {kOciManifest, kOciConfig, "application/vnd.oci.image.layer.v1.tar+zstd"},
      {kDockerManifest, kDockerConfig, "application/vnd.docker.image.rootfs.diff.tar.gzip"},
  };
  for (const auto& c : cases) {
    auto doc = parse_manifest(manifest_json(c.type, c.config, c.layer));
    ASSERT_TRUE(doc) << doc.error().message;
    const Manifest* m = std::get_if<Manifest>(&*doc);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->media_type, c.type);
    EXPECT_EQ(m->config.digest, digest('c'));
    EXPECT_EQ(m->config.size, 123u);
    ASSERT_EQ(m->layers.size(), 2u);
    EXPECT_EQ(m->layers[0].digest, digest('1')) << "bottom layer first";
    EXPECT_EQ(m->layers[1].size, 2000u);
  }
}

TEST(Manifest, KindFromContentTypeOrShape) {
  auto by_header = parse_manifest(
      manifest_json("", kDockerConfig, "application/vnd.docker.image.rootfs.diff.tar.gzip"),
      "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8");
  ASSERT_TRUE(by_header) << by_header.error().message;
  EXPECT_EQ(std::get<Manifest>(*by_header).media_type, kDockerManifest);

  auto by_shape = parse_manifest(
      manifest_json("", kOciConfig, "application/vnd.oci.image.layer.v1.tar"), "application/json");
  ASSERT_TRUE(by_shape);
  EXPECT_EQ(std::get<Manifest>(*by_shape).media_type, kOciManifest);

  auto mismatch = parse_manifest(
      manifest_json(kOciManifest, kOciConfig, "application/vnd.oci.image.layer.v1.tar"),
      kDockerManifestList);
  EXPECT_FALSE(mismatch);
}

TEST(Manifest, IndexesAndPlatformSelection) {
  for (auto type : {kOciIndex, kDockerManifestList}) {
    auto doc = parse_manifest(index_json(type));
    ASSERT_TRUE(doc) << doc.error().message;
    const Index* index = std::get_if<Index>(&*doc);
    ASSERT_NE(index, nullptr);
    EXPECT_EQ(index->media_type, type);
    ASSERT_EQ(index->manifests.size(), 3u);
    auto amd64 = select_platform(*index, "linux", "amd64");
    ASSERT_TRUE(amd64);
    EXPECT_EQ(amd64->digest, digest('b'));
    auto arm = select_platform(*index, "linux", "arm64", "v8");
    ASSERT_TRUE(arm);
    EXPECT_EQ(arm->digest, digest('a'));
    auto none = select_platform(*index, "linux", "s390x");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
    EXPECT_NE(none.error().message.find("linux/arm64/v8"), std::string::npos)
        << none.error().message;
  }
}

TEST(Manifest, RejectsMalformed) {
  const std::string ok_layer = "application/vnd.oci.image.layer.v1.tar+gzip";
  std::string good = manifest_json(kOciManifest, kOciConfig, ok_layer);
  auto replace = [&](std::string s, const std::string& from, const std::string& to) {
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  const std::string bad[] = {
      "",
      "null",
      "[]",
      "{",
      R"({"schemaVersion":1,"name":"x","fsLayers":[]})",
      replace(good, R"("schemaVersion":2)", R"("schemaVersion":3)"),
      replace(good, R"("schemaVersion":2)", R"("schemaVersion":"2")"),
      replace(good, std::string(kOciManifest), "application/x-unknown"),
      replace(good, digest('1'), "sha256:1234"),
      replace(good, digest('1'), "md5:" + std::string(32, '1')),
      replace(good, digest('1'), "sha256:" + std::string(64, 'G')),
      replace(good, R"("size":1000)", R"("size":-1)"),
      replace(good, R"("size":1000)", R"("size":1.5)"),
      replace(good, R"("size":1000)", R"("size":18446744073709551615)"),
      replace(good, R"("size":1000)", R"("sighs":1000)"),
      replace(good, ok_layer, "application/vnd.example.helm.chart"),
      replace(good, std::string(kOciConfig), "application/octet-stream"),
      replace(good, R"("layers":[)", R"("layerz":[)"),
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":{}})",
      R"({"schemaVersion":2})",
      std::string(kMaxManifestBytes + 1, ' '),
  };
  for (const auto& input : bad) {
    auto r = parse_manifest(input);
    EXPECT_FALSE(r) << input.substr(0, 300);
  }
}

TEST(Manifest, ImageConfig) {
  auto c = parse_image_config(R"({"architecture":"amd64","os":"linux","config":{
      "Entrypoint":["/bin/app"],"Cmd":["--serve"],"Env":["PATH=/usr/bin","A=b=c"],
      "WorkingDir":"/srv","User":"1000:1000","ExposedPorts":{"8080/tcp":{},"53/udp":{}},
      "StopSignal":"SIGQUIT","Labels":{"a":"b"}},"rootfs":{"type":"layers","diff_ids":[]}})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->entrypoint, std::vector<std::string>{"/bin/app"});
  EXPECT_EQ(c->cmd, std::vector<std::string>{"--serve"});
  EXPECT_EQ(c->env, (std::vector<std::string>{"PATH=/usr/bin", "A=b=c"}));
  EXPECT_EQ(c->working_dir, "/srv");
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->exposed_ports, (std::vector<std::string>{"8080/tcp", "53/udp"}));
  EXPECT_EQ(c->stop_signal, "SIGQUIT");

  auto empty = parse_image_config(R"({"config":{"Entrypoint":null,"Cmd":null}})");
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, model::ImageConfig{});
  EXPECT_TRUE(parse_image_config(R"({"architecture":"amd64"})"));

  EXPECT_FALSE(parse_image_config(R"({"config":{"Cmd":"sh"}})"));
  EXPECT_FALSE(parse_image_config(R"({"config":{"Env":[1]}})"));
  EXPECT_FALSE(parse_image_config(R"({"config":[]})"));
  EXPECT_FALSE(parse_image_config("not json"));
}

TEST(Challenge, ParsesBearerAndBasic) {
  auto c = parse_auth_challenge(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(c->params["service"], "registry.docker.io");
  EXPECT_EQ(c->params["scope"], "repository:library/busybox:pull");

  auto b = parse_auth_challenge(R"(Basic realm="a \"quoted\" realm", charset=UTF-8)");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->scheme, "basic");
  EXPECT_EQ(b->params["realm"], "a \"quoted\" realm");
  EXPECT_EQ(b->params["charset"], "UTF-8");

  EXPECT_FALSE(parse_auth_challenge(""));
  EXPECT_FALSE(parse_auth_challenge(R"(Bearer realm="unterminated)"));
  EXPECT_EQ(base64_encode("user:pass"), "dXNlcjpwYXNz");
  EXPECT_EQ(base64_encode("a"), "YQ==");
  EXPECT_EQ(net::percent_encode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
}

}  // namespace
}  // namespace mill::image
