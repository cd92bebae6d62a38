// Typed, optional fields of a tokenizer.json object: a field of the wrong JSON type is an error that
// names the field and the value, never a nlohmann::json type_error thrown out of the reader.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kernels/status.h"

namespace ql {

// A JSON value for an error message: compact, invalid UTF-8 replaced, cut after 80 characters.
inline std::string JsonShown(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// obj[key] as a bool; `def` when obj is not an object, lacks the key or holds null.
// `source` names the file, `what` the object ("model", "pre_tokenizer Digits").
inline StatusOr<bool> JsonBool(const nlohmann::json& obj, const char* key, bool def, std::string_view source,
                               std::string_view what) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return def;
  const nlohmann::json& v = obj[key];
  if (!v.is_boolean()) {
    return Status::Errorf("{}: {} field '{}' must be true or false (got {})", source, what, key, JsonShown(v));
  }
  return v.get<bool>();
}

// obj[key] as a string; `def` when obj is not an object, lacks the key or holds null.
inline StatusOr<std::string> JsonString(const nlohmann::json& obj, const char* key, std::string def,
                                        std::string_view source, std::string_view what) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return def;
  const nlohmann::json& v = obj[key];
  if (!v.is_string()) {
    return Status::Errorf("{}: {} field '{}' must be a string (got {})", source, what, key, JsonShown(v));
  }
  return v.get<std::string>();
}

}  // namespace ql
