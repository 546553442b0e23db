#pragma once

// Pure renderings of API answers for people: the services, volumes and deploys
// listings and one deploy's record. They take the parsed JSON (and the current time
// where ages are shown) and write text; a field missing or of another type shows as
// "-", never as a failure.

#include <boost/json/value.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace mill::cli {

// GET /v1/services: per service NAME IMAGE REPLICAS (healthy/desired), then its
// allocations ID NODE STATUS ADDRESS CPU MEMORY AGE (RESTARTS when reported), with an
// allocation's message (a crash loop's reason) on the line below it.
void print_services(const boost::json::value& services, SystemTime now, std::ostream& out);

// GET /v1/volumes: NAME NODE SIZE USED SERVICE.
void print_volumes(const boost::json::value& volumes, std::ostream& out);

// GET /v1/deploys: ID STARTED DURATION OUTCOME REASON.
void print_deploys(const boost::json::value& deploys, SystemTime now, std::ostream& out);

// GET /v1/deploys/ID: the record's fields, then each event on its own line.
void print_deploy_record(const boost::json::value& record, SystemTime now, std::ostream& out);

// The message for a 409 from DELETE /v1/volumes/NAME: which service uses the volume
// (the body's "service", else its "error" text) and what to do about it.
std::string volume_in_use_text(std::string_view name, std::string_view body);

// "2026-02-14T10:00:00Z" (fractions and +HH:MM offsets accepted); nullopt otherwise.
std::optional<SystemTime> parse_rfc3339(std::string_view text);
// How long ago: "45s", "12m", "3h", "5d".
std::string format_age(SystemTime then, SystemTime now);

}  // namespace mill::cli
