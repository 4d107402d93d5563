// Ed25519 signing (OpenSSL) and the DSSE envelope that carries a signed in-toto Statement.
//
// DSSE (github.com/secure-systems-lab/dsse, "envelope.md"): the signature is over
// PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths as ASCII
// decimal; the envelope is {"payloadType", "payload": base64(body), "signatures": [{"keyid",
// "sig": base64}]}. in-toto's payloadType is "application/vnd.in-toto+json".
#pragma once

#include <string>
#include <string_view>

#include "engine/core/result.h"

namespace popper::harness {

inline constexpr const char* kInTotoPayloadType = "application/vnd.in-toto+json";

std::string base64_encode(std::string_view bytes);
// An error when `text` is not canonical base64 (padding included).
Result<std::string> base64_decode(std::string_view text);

std::string dsse_pae(std::string_view payload_type, std::string_view payload);

struct Ed25519Keys {
  std::string private_pem;  // PKCS#8 "PRIVATE KEY"
  std::string public_pem;   // SubjectPublicKeyInfo "PUBLIC KEY"
};
// A fresh key pair (for tests and `popper signoff --generate-key`).
Result<Ed25519Keys> generate_ed25519();

// keyid: sha256 hex of the raw 32-byte public key. Errors name the file (or "key") and say
// when the key is not Ed25519.
Result<std::string> ed25519_keyid_from_public_pem(const std::string& pem, const std::string& where);
Result<std::string> ed25519_public_pem_from_private(const std::string& pem, const std::string& where);

// Raw 64-byte signature.
Result<std::string> ed25519_sign(const std::string& private_pem, const std::string& where,
                                 std::string_view message);
// true when `sig` is a valid signature of `message` by the public key; an error only for a bad key.
Result<bool> ed25519_verify(const std::string& public_pem, const std::string& where, std::string_view message,
                            std::string_view sig);

}  // namespace popper::harness
