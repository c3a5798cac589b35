#include "agent/inprocess_backend.h"

#include "agent/constrain/tool_grammar.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <istream>
#include <ostream>
#include <stdexcept>

#include <boost/asio/post.hpp>

#include "agent/constrain/grammar.h"
#include "agent/constrain/tool_call_parser.h"

namespace qnext::agent {

using Clock = std::chrono::steady_clock;

namespace {

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return i;
}

}  // namespace

// Runs one generation on the engine thread: applies the grammar mask, turns tokens into text events, enforces
// the thinking budget, and reports back on the io_context.
class InProcessBackend::Controller : public GenerationController {
public:
    Controller(InProcessBackend& b, const GenerationRequest& req, std::vector<int32_t> prompt, int64_t start,
               constrain::Matcher matcher, EventHandler on_event, DoneHandler on_done)
        : b_(b), io_(b.io_), prompt_(std::move(prompt)), start_(start), matcher_(std::move(matcher)),
          decoder_(b.tok_),
          parser_(req.thinking, xml_tool_calls(b.template_for(req)),
                  xml_tool_calls(b.template_for(req)) && !req.tools.empty()
                      ? constrain::xml_string_parameters(constrain::parse_tools(req.tools))
                      : std::map<std::string, std::set<std::string>>{}), thinking_budget_(req.thinking ? req.thinking_budget : -1),
          in_reasoning_(req.thinking), on_event_(std::move(on_event)), on_done_(std::move(on_done)) {
        for (int32_t id : b.tok_.eos_ids()) eos_.push_back(id);
        if (auto t = b.tok_.token_id("</think>")) think_end_ = *t;
        result_.stats.prompt_tokens = static_cast<int64_t>(prompt_.size());
        result_.stats.reused_tokens = start_;
        result_.stats.prefill_tokens = static_cast<int64_t>(prompt_.size()) - start_;
    }

    void on_checkpoint(SequenceState& state) override {
        checkpoints_.push_back({state.n_tokens(), std::make_shared<SequenceState::Snapshot>(state.snapshot())});
    }
    void on_prefill_done(int64_t) override { prefilled_ = true; }

    bool fill_mask(uint32_t* words, size_t n_words) override {
        matcher_.fill_next_token_bitmask(words, n_words);
        return true;
    }

    TokenDecision on_token(int32_t token) override {
        auto now = Clock::now();
        if (generated_.empty()) t_first_ = now;
        t_last_ = now;
        generated_.push_back(token);
        if (!matcher_.accept_token(token)) {
            error_ = "internal: the grammar rejected token " + std::to_string(token) + " it allowed";
            return {true, -1};
        }
        if (std::find(eos_.begin(), eos_.end(), token) != eos_.end()) return {true, -1};
        emit(decoder_.push(token));
        TokenDecision d;
        if (in_reasoning_) {
            if (token == think_end_) {
                in_reasoning_ = false;
            } else if (thinking_budget_ >= 0 && ++reasoning_tokens_ >= thinking_budget_ && think_end_ >= 0) {
                d.force_next = think_end_;  // budget spent: close the reasoning now
            }
        }
        if (matcher_.is_terminated()) d.stop = true;
        return d;
    }

    void on_finish(const std::string& reason, const std::string& error) override {
        auto t_end = Clock::now();
        emit(decoder_.finish());
        bool truncated = reason == "length";
        handle(parser_.finish(truncated));
        result_.content = trim(result_.content);
        result_.reasoning = trim(result_.reasoning);
        std::string err = !error_.empty() ? error_ : error;
        if (reason == "error" || !error_.empty()) {
            result_.finish = FinishReason::Error;
            result_.error = err;
            result_.tool_calls.clear();
        } else if (reason == "cancelled") {
            result_.finish = FinishReason::Cancelled;
            result_.tool_calls.clear();
        } else if (truncated) {
            result_.finish = FinishReason::Length;
            result_.tool_calls.clear();  // a call cut off by max_tokens is never executed
        } else {
            result_.finish = result_.tool_calls.empty() ? FinishReason::Stop : FinishReason::ToolCalls;
        }
        auto& st = result_.stats;
        st.generated_tokens = static_cast<int64_t>(generated_.size());
        st.total_ms = ms_between(t_start_, t_end);
        if (!generated_.empty()) {
            st.ttft_ms = ms_between(t_start_, t_first_);
            double decode_s = ms_between(t_first_, t_last_) / 1000.0;
            if (generated_.size() > 1 && decode_s > 0) st.decode_tok_s = static_cast<double>(generated_.size() - 1) / decode_s;
        }
        // Every chosen token except the last one was fed to the model; an error or a cancelled prefill
        // leaves the state at an unknown position.
        std::vector<int32_t> fed;
        if (!generated_.empty()) fed.assign(generated_.begin(), generated_.end() - 1);
        bool consistent = reason != "error" && prefilled_;
        boost::asio::post(io_, [this, self = self_.lock(), fed = std::move(fed), consistent] {
            b_.on_generation_done(prompt_, fed, consistent, std::move(checkpoints_),
                                  static_cast<int>(result_.tool_calls.size()));
            // The handlers are destroyed here, on the io thread: whatever they hold (a server connection)
            // must not be freed on the engine thread when it drops the controller.
            on_event_ = nullptr;
            auto done = std::move(on_done_);
            on_done_ = nullptr;
            done(std::move(result_));
        });
    }

    // The controller keeps itself alive until its completion has run on the io_context.
    void set_self(const std::shared_ptr<Controller>& self) { self_ = self; }
    int first_call_id_ = 0;

private:
    static std::string trim(const std::string& t) {
        size_t b = t.find_first_not_of(" \n\r\t");
        if (b == std::string::npos) return {};
        size_t e = t.find_last_not_of(" \n\r\t");
        return t.substr(b, e - b + 1);
    }
    void emit(const std::string& text) {
        if (!text.empty()) handle(parser_.push(text));
    }
    // Parser events -> the result being built + streamed generation events.
    void handle(const std::vector<constrain::ToolCallEvent>& events) {
        using PK = constrain::ToolCallEvent::Kind;
        using GK = GenerationEvent::Kind;
        for (const auto& ev : events) {
            switch (ev.kind) {
                case PK::Reasoning:
                    result_.reasoning += ev.text;
                    post({GK::Reasoning, ev.text, 0});
                    break;
                case PK::Text:
                    result_.content += ev.text;
                    post({GK::Text, ev.text, 0});
                    break;
                case PK::CallStart:
                    names_[ev.index] = ev.name;
                    post({GK::ToolCallStart, ev.name, ev.index});
                    break;
                case PK::ArgumentsDelta: post({GK::ToolCallArguments, ev.text, ev.index}); break;
                case PK::CallEnd:
                case PK::CallInvalid: {
                    ToolCall c;
                    c.id = "call_" + std::to_string(first_call_id_ + static_cast<int>(result_.tool_calls.size()));
                    c.name = !ev.name.empty() ? ev.name : names_[ev.index];
                    c.arguments_text = ev.text;
                    c.arguments = ev.kind == PK::CallEnd ? ev.arguments : ojson(ojson::value_t::discarded);
                    post({GK::ToolCallDone, c.name, ev.index});
                    result_.tool_calls.push_back(std::move(c));
                    break;
                }
                case PK::CallTruncated:   // never executed; reported (finish reason length)
                    result_.truncated_call = !ev.name.empty() ? ev.name : names_.count(ev.index) ? names_[ev.index] : "?";
                    break;
            }
        }
    }
    void post(GenerationEvent g) {
        boost::asio::post(io_, [h = on_event_, g = std::move(g)] { h(g); });
    }

    InProcessBackend& b_;
    boost::asio::io_context& io_;
    std::vector<int32_t> prompt_;
    int64_t start_;
    constrain::Matcher matcher_;
    StreamDecoder decoder_;
    constrain::ToolCallParser parser_;
    int thinking_budget_;
    bool in_reasoning_;
    int reasoning_tokens_ = 0;
    int32_t think_end_ = -1;
    std::vector<int32_t> eos_;
    EventHandler on_event_;
    DoneHandler on_done_;
    GenerationResult result_;
    std::vector<int32_t> generated_;
    std::vector<Checkpoint> checkpoints_;
    std::string error_;
    bool prefilled_ = false;
    Clock::time_point t_start_ = Clock::now(), t_first_, t_last_;
    std::map<int, std::string> names_;   // tool-call index -> name
    std::weak_ptr<Controller> self_;
};

InProcessBackend::InProcessBackend(boost::asio::io_context& io, Engine& engine, const Tokenizer& tokenizer,
                                   InProcessOptions options)
    : io_(io), engine_(engine), tok_(tokenizer), options_(std::move(options)) {
    seq_ = engine_.open_sequence(options_.max_context);
    vocab_ = options_.vocab ? options_.vocab : constrain::Vocabulary::from_tokenizer(tok_);
    grammars_ = options_.grammars ? options_.grammars : std::make_shared<GrammarCache>(16);
    constrain::Grammar::prepare_vocabulary(vocab_);   // once per vocabulary: a no-op when already prepared
}

InProcessBackend::~InProcessBackend() {
    if (cancel_flag_) cancel_flag_->store(true);
    engine_.close_sequence(seq_);
}

RenderedChat InProcessBackend::render(const GenerationRequest& req, bool add_generation_prompt) const {
    ojson r = ojson::object();
    r["messages"] = req.messages;
    if (!req.tools.empty()) r["tools"] = req.tools;
    r["add_generation_prompt"] = add_generation_prompt;
    r["enable_thinking"] = req.thinking;
    return render_chat_spans(template_for(req), r);
}

std::vector<int32_t> InProcessBackend::prompt_ids(const GenerationRequest& req, bool add_generation_prompt) const {
    return encode_chat(tok_, render(req, add_generation_prompt));
}

constrain::Grammar InProcessBackend::grammar_for(const GenerationRequest& req) const {
    return grammars_->get(req, xml_tool_calls(template_for(req)), vocab_);   // Qwen3.5 / 3.6: XML calls
}

size_t InProcessBackend::num_checkpoints() const { return checkpoints_.size(); }

void InProcessBackend::forget() {
    tokens_.clear();
    checkpoints_.clear();
    consistent_ = false;
}

void InProcessBackend::async_generate(const GenerationRequest& req, EventHandler on_event, DoneHandler on_done) {
    if (busy_) throw std::logic_error("InProcessBackend: a generation is already running");
    auto fail = [&](const std::string& msg) {
        GenerationResult r;
        r.finish = FinishReason::Error;
        r.error = msg;
        r.invalid_request = true;
        boost::asio::post(io_, [on_done, r = std::move(r)]() mutable { on_done(std::move(r)); });
    };
    // 1. Render and tokenize the prompt; the history part (without the generation prompt) marks the turn
    //    boundary where a checkpoint is taken.
    std::vector<int32_t> prompt, history;
    std::optional<constrain::Grammar> grammar;
    try {
        // Only the template's markup becomes control tokens: "<|im_start|>" in a tool result is text.
        prompt = prompt_ids(req, true);
        history = prompt_ids(req, false);
        // 2. The output structure for this request.
        grammar = grammar_for(req);
    } catch (const std::exception& e) {
        return fail(e.what());
    }
    const int64_t max_new = req.max_tokens >= 0 ? req.max_tokens
                                                : options_.max_context - static_cast<int64_t>(prompt.size());
    if (max_new <= 0 || static_cast<int64_t>(prompt.size()) + max_new > options_.max_context) {
        return fail("the conversation needs " + std::to_string(prompt.size()) + " prompt tokens + " +
                    std::to_string(std::max<int64_t>(max_new, 1)) + " new tokens, more than the session's context of " +
                    std::to_string(options_.max_context) + " (raise --context)");
    }
    int64_t boundary = -1;
    if (history.size() < prompt.size() && std::equal(history.begin(), history.end(), prompt.begin()))
        boundary = static_cast<int64_t>(history.size());

    // 3. Reuse: continue from the kept state, or from the nearest checkpoint before the divergence.
    size_t lcp = reuse_ ? common_prefix(tokens_, prompt) : 0;
    lcp = std::min(lcp, prompt.size() - 1);  // at least one token is computed, for the next-token logits
    int64_t start = 0;
    std::shared_ptr<SequenceState::Snapshot> restore;
    if (reuse_ && consistent_ && lcp == tokens_.size()) {
        start = static_cast<int64_t>(lcp);
    } else {
        for (auto it = checkpoints_.rbegin(); it != checkpoints_.rend(); ++it) {
            if (reuse_ && it->pos <= static_cast<int64_t>(lcp)) {
                start = it->pos;
                restore = it->snap;
                break;
            }
        }
    }
    // Checkpoints past the resume point will be overwritten.
    checkpoints_.erase(std::remove_if(checkpoints_.begin(), checkpoints_.end(),
                                      [&](const Checkpoint& c) { return c.pos > start; }),
                       checkpoints_.end());

    GenerationJob job;
    job.seq = seq_;
    if (restore) job.before = [restore](SequenceState& s) { s.restore(*restore); };
    else if (start == 0) job.before = [](SequenceState& s) { s.reset(); };
    job.prompt.assign(prompt.begin() + start, prompt.end());
    if (boundary > start) job.checkpoint_after = boundary - start;
    job.max_new_tokens = max_new;
    job.sampling.temperature = static_cast<float>(req.sampling.temperature);
    job.sampling.top_p = static_cast<float>(req.sampling.top_p);
    job.sampling.top_k = req.sampling.top_k;
    job.sampling.min_p = static_cast<float>(req.sampling.min_p);
    job.sampling.presence_penalty = static_cast<float>(req.sampling.presence_penalty);
    job.sampling.frequency_penalty = static_cast<float>(req.sampling.frequency_penalty);
    job.sampling.repetition_penalty = static_cast<float>(req.sampling.repetition_penalty);
    job.sampling.seed = req.sampling.seed;
    cancel_flag_ = std::make_shared<std::atomic<bool>>(false);
    job.cancel = cancel_flag_;
    auto controller = std::make_shared<Controller>(*this, req, prompt, start, constrain::Matcher(*grammar),
                                                   std::move(on_event), std::move(on_done));
    controller->set_self(controller);
    controller->first_call_id_ = next_call_id_;
    job.controller = controller;
    busy_ = true;
    work_.emplace(io_.get_executor());
    engine_.submit(std::move(job));
}

void InProcessBackend::on_generation_done(const std::vector<int32_t>& prompt, const std::vector<int32_t>& fed,
                                          bool consistent, std::vector<Checkpoint> new_checkpoints, int n_calls) {
    busy_ = false;
    work_.reset();
    next_call_id_ += n_calls;
    tokens_ = prompt;
    tokens_.insert(tokens_.end(), fed.begin(), fed.end());
    consistent_ = consistent;
    for (auto& c : new_checkpoints) {
        if (!checkpoints_.empty() && checkpoints_.back().pos == c.pos) checkpoints_.back() = std::move(c);
        else checkpoints_.push_back(std::move(c));
    }
    while (checkpoints_.size() > options_.max_checkpoints) checkpoints_.erase(checkpoints_.begin() + 1);
}

void InProcessBackend::cancel() {
    if (cancel_flag_) cancel_flag_->store(true);
}

}  // namespace qnext::agent

namespace qnext::agent {

namespace {
void put_u64(std::ostream& out, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    out.write(reinterpret_cast<const char*>(b), 8);
}
uint64_t get_u64(std::istream& in) {
    unsigned char b[8];
    if (!in.read(reinterpret_cast<char*>(b), 8)) throw std::runtime_error("session state: truncated");
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
    return v;
}
}  // namespace

// Layout: the sequence state, then u64 token count + int32 tokens, u64 consistent flag, u64 checkpoint count and
// per checkpoint its snapshot (which records its own position).
void InProcessBackend::save_state(std::ostream& out) const {
    if (busy_) throw std::runtime_error("cannot save the session while it is generating");
    engine_.with_state(seq_, [&](SequenceState& s) {
        s.save(out);
        put_u64(out, tokens_.size());
        out.write(reinterpret_cast<const char*>(tokens_.data()), static_cast<std::streamsize>(tokens_.size() * 4));
        put_u64(out, consistent_ ? 1 : 0);
        put_u64(out, checkpoints_.size());
        for (const Checkpoint& c : checkpoints_) SequenceState::save_snapshot(out, *c.snap);
    });
}

void InProcessBackend::load_state(std::istream& in) {
    if (busy_) throw std::runtime_error("cannot load a session while generating");
    std::vector<int32_t> tokens;
    std::vector<Checkpoint> checkpoints;
    bool consistent = false;
    engine_.with_state(seq_, [&](SequenceState& s) {
        s.load(in);
        uint64_t n = get_u64(in);
        if (n > static_cast<uint64_t>(s.capacity())) throw std::runtime_error("session state: token count exceeds the context");
        tokens.resize(n);
        if (!in.read(reinterpret_cast<char*>(tokens.data()), static_cast<std::streamsize>(n * 4)))
            throw std::runtime_error("session state: truncated token list");
        consistent = get_u64(in) == 1;
        uint64_t nc = get_u64(in);
        if (nc > 4096) throw std::runtime_error("session state: implausible checkpoint count");
        for (uint64_t i = 0; i < nc; ++i) {
            auto snap = std::make_shared<SequenceState::Snapshot>(s.load_snapshot(in));
            checkpoints.push_back({snap->n_tokens, snap});
        }
        if (consistent && s.n_tokens() != static_cast<int64_t>(n))
            throw std::runtime_error("session state: token list does not match the sequence state");
    });
    for (int32_t t : tokens)
        if (t < 0 || t >= tok_.vocab_size()) throw std::runtime_error("session state: token id out of range");
    tokens_ = std::move(tokens);
    consistent_ = consistent;
    checkpoints_ = std::move(checkpoints);
}

}  // namespace qnext::agent
