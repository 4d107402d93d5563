#include "harness/signoff/crypto.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <memory>

#include "engine/core/sha256.h"

namespace popper::harness {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct CtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

Result<Pkey> read_key(const std::string& pem, const std::string& where, bool is_private) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                             : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (!raw)
    return make_error(where, ": not a PEM ", is_private ? "private" : "public", " key (", openssl_error(),
                      ")");
  Pkey key(raw);
  if (EVP_PKEY_id(raw) != EVP_PKEY_ED25519)
    return make_error(where, ": want an Ed25519 key, got ", OBJ_nid2sn(EVP_PKEY_id(raw)),
                      " (make one with `openssl genpkey -algorithm ed25519`)");
  return key;
}

Result<std::string> public_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PUBKEY(bio.get(), key)) return make_error("writing a public key: ", openssl_error());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return make_error("base64: length ", text.size(), " is not a multiple of 4");
  std::string out(text.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return make_error("base64: invalid characters");
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  if (base64_encode(out) != text) return make_error("base64: not canonical");
  return out;
}

std::string dsse_pae(std::string_view type, std::string_view payload) {
  return "DSSEv1 " + std::to_string(type.size()) + " " + std::string(type) + " " +
         std::to_string(payload.size()) + " " + std::string(payload);
}

Result<Ed25519Keys> generate_ed25519() {
  EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!raw) return make_error("generating an Ed25519 key: ", openssl_error());
  Pkey key(raw);
  Ed25519Keys k;
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(bio.get(), raw, nullptr, nullptr, 0, nullptr, nullptr))
    return make_error("writing a private key: ", openssl_error());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  k.private_pem.assign(data, static_cast<size_t>(n));
  auto pub = public_pem(raw);
  if (!pub.ok()) return pub.error();
  k.public_pem = *pub;
  return k;
}

Result<std::string> ed25519_keyid_from_public_pem(const std::string& pem, const std::string& where) {
  auto key = read_key(pem, where, false);
  if (!key.ok()) return key.error();
  unsigned char raw[32];
  size_t len = sizeof raw;
  if (!EVP_PKEY_get_raw_public_key(key->get(), raw, &len)) return make_error(where, ": ", openssl_error());
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(raw), len));
}

Result<std::string> ed25519_public_pem_from_private(const std::string& pem, const std::string& where) {
  auto key = read_key(pem, where, true);
  if (!key.ok()) return key.error();
  return public_pem(key->get());
}

Result<std::string> ed25519_sign(const std::string& private_pem, const std::string& where,
                                 std::string_view message) {
  auto key = read_key(private_pem, where, true);
  if (!key.ok()) return key.error();
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key->get()) != 1)
    return make_error(where, ": ", openssl_error());
  std::string sig(64, '\0');
  size_t len = sig.size();
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
    return make_error(where, ": signing failed: ", openssl_error());
  sig.resize(len);
  return sig;
}

Result<bool> ed25519_verify(const std::string& public_pem, const std::string& where, std::string_view message,
                            std::string_view sig) {
  auto key = read_key(public_pem, where, false);
  if (!key.ok()) return key.error();
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key->get()) != 1)
    return make_error(where, ": ", openssl_error());
  int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                            reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ERR_clear_error();
  return rc == 1;
}

}  // namespace popper::harness
