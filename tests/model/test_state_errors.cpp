// SequenceState bookkeeping and the forward pass's bad-input errors (clear messages, state untouched).
#include <gtest/gtest.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "model/model_folder.h"
#include "model/qwen3_next.h"
#include "tests/model/golden.h"

namespace qnext {
namespace {

ModelFolder& tiny() {
    static ModelFolder f = load_model_folder(test::model_data_dir("tiny_a"), false);
    return f;
}

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(ForwardErrors, TokenIdOutsideVocabulary) {
    Qwen3NextModel model(tiny());
    SequenceState st = model.new_state(16);
    const std::vector<int32_t> ids{1, 2, static_cast<int32_t>(model.vocab_size())};
    const std::string msg = error_of([&] { model.forward(st, ids); });
    EXPECT_NE(msg.find("token id 512 at input position 2 is outside the vocabulary [0, 512)"), std::string::npos)
        << msg;
    EXPECT_EQ(st.n_tokens(), 0);  // nothing consumed
    const std::vector<int32_t> neg{-1};
    EXPECT_NE(error_of([&] { model.forward(st, neg); }).find("outside the vocabulary"), std::string::npos);
    EXPECT_NE(error_of([&] { model.forward(st, std::vector<int32_t>{}); }).find("no tokens"), std::string::npos);
}

TEST(ForwardErrors, ContextBeyondMaxPositionEmbeddings) {
    const Qwen3NextConfig& c = tiny().config;  // max_position_embeddings = 256
    const std::string msg = error_of([&] { SequenceState st(c, c.max_position_embeddings + 1); });
    EXPECT_NE(msg.find("257 tokens exceeds max_position_embeddings = 256"), std::string::npos) << msg;
}

TEST(ForwardErrors, ContextBeyondReservedCapacity) {
    Qwen3NextModel model(tiny());
    SequenceState st = model.new_state(4);
    model.forward(st, std::vector<int32_t>{1, 2, 3});
    const std::string msg = error_of([&] { model.forward(st, std::vector<int32_t>{4, 5}); });
    EXPECT_NE(msg.find("context of 5 tokens exceeds the 4 tokens reserved"), std::string::npos) << msg;
    EXPECT_EQ(st.n_tokens(), 3);
}

TEST(ForwardErrors, MemoryReservationFailsWithEstimate) {
    const Qwen3NextConfig& c = tiny().config;
    const StateMemoryEstimate est = SequenceState::estimate(c, 200);
    EXPECT_EQ(est.kv_bytes, 200ull * 2 * c.num_key_value_heads * c.head_dim * 4);  // 1 attention layer
    EXPECT_GT(est.gdn_bytes, 0u);
    const std::string msg = error_of([&] { SequenceState st(c, 200, est.total() - 1); });
    EXPECT_NE(msg.find("a context of 200 tokens needs"), std::string::npos) << msg;
    EXPECT_NE(msg.find("KV cache"), std::string::npos) << msg;
    EXPECT_NE(msg.find("is available"), std::string::npos) << msg;
    EXPECT_NO_THROW(SequenceState(c, 200, est.total()));
}

TEST(ForwardErrors, UnsupportedConfig) {
    Qwen3NextConfig c = tiny().config;
    c.hidden_act = "gelu";
    const std::string msg = error_of([&] { Qwen3NextModel m(c, tiny().weights); });
    EXPECT_NE(msg.find("hidden_act 'gelu'"), std::string::npos) << msg;
}

TEST(SequenceStateOps, TruncateRefusedForHybridModels) {
    Qwen3NextModel model(tiny());
    SequenceState st = model.new_state(8);
    model.forward(st, std::vector<int32_t>{1, 2, 3});
    EXPECT_NE(error_of([&] { st.truncate(2); }).find("restore a snapshot instead"), std::string::npos);
    EXPECT_NE(error_of([&] { st.truncate(5); }).find("cannot truncate to 5"), std::string::npos);
    EXPECT_NO_THROW(st.truncate(3));
}

TEST(SequenceStateOps, SnapshotRefusedAfterItsPrefixWasOverwritten) {
    Qwen3NextModel model(tiny());
    SequenceState st = model.new_state(16);
    model.forward(st, std::vector<int32_t>{1, 2, 3});
    const auto early = st.snapshot();                       // at 3
    model.forward(st, std::vector<int32_t>{4, 5, 6});
    const auto late = st.snapshot();                        // at 6
    st.restore(early);
    EXPECT_NO_THROW(st.restore(late));                      // prefix [0, 6) still intact
    st.restore(early);
    model.forward(st, std::vector<int32_t>{7});             // overwrites position 3
    const std::string msg = error_of([&] { st.restore(late); });
    EXPECT_NE(msg.find("KV positions from 3 were overwritten"), std::string::npos) << msg;
    EXPECT_NO_THROW(st.restore(early));                     // [0, 3) untouched
    SequenceState other = st.clone();
    EXPECT_NE(error_of([&] { other.restore(early); }).find("different sequence state"), std::string::npos);
}

TEST(SequenceStateOps, ResetStartsAFreshSequence) {
    Qwen3NextModel model(tiny());
    const std::vector<int32_t> ids{9, 8, 7, 6};
    SequenceState a = model.new_state(8);
    const auto fresh = model.forward(a, ids).data;
    a.reset();
    EXPECT_EQ(a.n_tokens(), 0);
    EXPECT_EQ(model.forward(a, ids).data, fresh);
}

TEST(SequenceStateOps, SaveLoadContinuesBitIdentically) {
    Qwen3NextModel model(tiny());
    SequenceState a = model.new_state(32);
    model.forward(a, std::vector<int32_t>{5, 6, 7, 8, 9});
    const auto snap = a.snapshot();                          // at 5
    model.forward(a, std::vector<int32_t>{10, 11});          // at 7
    std::stringstream file, snap_file;
    a.save(file);
    SequenceState::save_snapshot(snap_file, snap);
    const std::vector<int32_t> next{12, 13};
    const auto expected = model.forward(a, next, LogitsRows::All).data;

    SequenceState b = model.new_state(16);
    model.forward(b, std::vector<int32_t>{1, 1, 1});         // junk that load() must replace
    b.load(file);
    EXPECT_EQ(b.n_tokens(), 7);
    const auto got = model.forward(b, next, LogitsRows::All).data;
    ASSERT_EQ(got.size(), expected.size());
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0);

    // the snapshot comes back valid for the loaded state... but b has since overwritten nothing below 7
    const auto snap_b = b.load_snapshot(snap_file);
    b.restore(snap_b);
    EXPECT_EQ(b.n_tokens(), 5);
    a.restore(snap);
    const auto ra = model.forward(a, std::vector<int32_t>{20}).data;
    const auto rb = model.forward(b, std::vector<int32_t>{20}).data;
    EXPECT_EQ(std::memcmp(ra.data(), rb.data(), ra.size() * sizeof(float)), 0);

    // wrong capacity / wrong model / truncated file: clear errors
    std::stringstream f2;
    a.save(f2);
    SequenceState small = model.new_state(3);
    EXPECT_NE(error_of([&] { small.load(f2); }).find("room for 3"), std::string::npos);
    static ModelFolder other = load_model_folder(test::model_data_dir("tiny_b"), false);
    Qwen3NextModel other_model(other);
    SequenceState c = other_model.new_state(16);
    std::stringstream f3;
    a.save(f3);
    EXPECT_NE(error_of([&] { c.load(f3); }).find("different"), std::string::npos);
    std::stringstream f4;
    a.save(f4);
    std::string cut = f4.str().substr(0, f4.str().size() - 10);
    std::stringstream f5(cut);
    SequenceState d = model.new_state(16);
    EXPECT_NE(error_of([&] { d.load(f5); }).find("truncated"), std::string::npos);
}

TEST(SequenceStateOps, ActiveBytesCountTopKExperts) {
    Qwen3NextModel model(tiny());
    const Qwen3NextConfig& c = tiny().config;
    // f32 weights: every tensor counted once except experts (top-k of E) and the embedding (one row)
    uint64_t total = 0;
    for (const auto& t : tiny().store.tensors()) total += t.nbytes;
    const uint64_t expert = 3ull * c.hidden_size * c.moe_intermediate_size * 4;
    const uint64_t embed = static_cast<uint64_t>(c.vocab_size) * c.hidden_size * 4;
    const uint64_t expected = total - embed + c.hidden_size * 4 -
                              c.num_hidden_layers * (c.num_experts - c.num_experts_per_tok) * expert;
    EXPECT_EQ(model.active_weight_bytes_per_token(), expected);
}

}  // namespace
}  // namespace qnext
