// The wire decoding a hostile peer reaches: a frame's header, then its body. Input: one byte that
// picks the body (frame_bodies.hpp; from the second round of the table on, under tight limits),
// then the frame. The frame is also decoded as a header, as every peer does with its first frame.
// wire::decode_error is the expected answer to bad input; anything else is a finding.
#include <cstdio>
#include <cstdlib>

#include "frame_bodies.hpp"

using namespace troupe;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return -1;
  static const auto loose = fuzz::default_limits();
  static const auto tight = fuzz::tight_limits();
  auto& kind = fuzz::frame_kinds[data[0] % fuzz::frame_kind_count];
  auto& lim = (data[0] / fuzz::frame_kind_count) % 2 == 0 ? loose : tight;
  const uint8_t* frame = data + 1;
  size_t frame_size = size - 1;
  try {
    try {
      fuzz::decode_header(frame, frame_size, lim);
    } catch (const wire::decode_error&) {
    }
    try {
      kind.decode(frame, frame_size, lim);
    } catch (const wire::decode_error&) {
    }
  } catch (const fuzz::reencode_failure& f) {
    std::fprintf(stderr, "fuzz_frame: the encoding of a decoded %s does not decode: %s\n",
                 kind.name, f.why.c_str());
    std::abort();
  }
  return 0;
}
