#include "agent/constrain/rules.h"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace qnext::constrain {

int32_t Nfa::literal(int32_t from, std::string_view s) {
    int32_t cur = from;
    for (unsigned char c : s) {
        int32_t next = add_state();
        range(cur, c, c, next);
        cur = next;
    }
    return cur;
}

int32_t RuleSet::declare(std::string name) {
    rules_.emplace_back();
    names_.push_back(std::move(name));
    return static_cast<int32_t>(rules_.size()) - 1;
}

int RuleSet::token_symbol(int32_t token_id) {
    for (size_t k = 0; k < tokens_.size(); ++k)
        if (tokens_[k] == token_id) return kByteSymbols + static_cast<int>(k);
    tokens_.push_back(token_id);
    return kByteSymbols + static_cast<int>(tokens_.size()) - 1;
}

size_t CompiledRules::num_states() const {
    size_t n = 0;
    for (const auto& r : rules) n += r.states.size();
    return n;
}

namespace {

using StateSet = std::vector<int32_t>;

// Epsilon closure; `seen` is a per-NFA scratch of visit stamps (no allocation per call).
struct Closer {
    const Nfa& nfa;
    std::vector<uint32_t> seen;
    uint32_t stamp = 0;
    explicit Closer(const Nfa& n) : nfa(n), seen(n.num_states(), 0) {}
    StateSet operator()(StateSet set) {
        ++stamp;
        for (int32_t s : set) seen[static_cast<size_t>(s)] = stamp;
        for (size_t i = 0; i < set.size(); ++i)
            for (int32_t t : nfa.eps[static_cast<size_t>(set[i])])
                if (seen[static_cast<size_t>(t)] != stamp) {
                    seen[static_cast<size_t>(t)] = stamp;
                    set.push_back(t);
                }
        std::sort(set.begin(), set.end());
        set.erase(std::unique(set.begin(), set.end()), set.end());
        return set;
    }
};

// Subset construction over symbols and call labels. Call edges are labels like symbols: two NFA
// states calling the same rule share one DFA transition.
DfaRule determinize(const Nfa& nfa, const std::string& name) {
    DfaRule out;
    out.name = name;
    Closer eps_closure(nfa);
    std::map<StateSet, int32_t> ids;
    std::vector<StateSet> sets;
    auto intern = [&](StateSet s) {
        auto [it, fresh] = ids.emplace(std::move(s), static_cast<int32_t>(sets.size()));
        if (fresh) {
            sets.push_back(it->first);
            out.states.emplace_back();
        }
        return it->second;
    };
    intern(eps_closure({nfa.start}));
    for (size_t i = 0; i < sets.size(); ++i) {
        const StateSet cur = sets[i];
        DfaState st;
        std::vector<int> bounds;
        std::map<int32_t, StateSet> calls;
        for (int32_t s : cur) {
            if (s == nfa.final_state) st.accept = true;
            for (const SymRange& e : nfa.edges[static_cast<size_t>(s)]) {
                bounds.push_back(e.lo);
                bounds.push_back(e.hi + 1);
            }
            for (const Call& c : nfa.calls[static_cast<size_t>(s)]) calls[c.rule].push_back(c.to);
        }
        std::sort(bounds.begin(), bounds.end());
        bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
        for (size_t b = 0; b + 1 < bounds.size(); ++b) {
            int lo = bounds[b], hi = bounds[b + 1] - 1;
            StateSet targets;
            for (int32_t s : cur)
                for (const SymRange& e : nfa.edges[static_cast<size_t>(s)])
                    if (e.lo <= lo && e.hi >= hi) targets.push_back(e.to);
            if (targets.empty()) continue;
            int32_t to = intern(eps_closure(std::move(targets)));
            if (!st.edges.empty() && st.edges.back().to == to && st.edges.back().hi + 1 == lo)
                st.edges.back().hi = static_cast<uint16_t>(hi);
            else
                st.edges.push_back({static_cast<uint16_t>(lo), static_cast<uint16_t>(hi), to});
        }
        for (auto& [rule, targets] : calls) st.calls.push_back({rule, intern(eps_closure(targets))});
        out.states[i] = std::move(st);
    }
    return out;
}

// Drops states that cannot reach an accepting state (calls to rules with an empty language count
// as dead) and states unreachable from the start; renumbers the rest.
void prune(CompiledRules& g) {
    const size_t n = g.rules.size();
    std::vector<char> productive(n, 0);
    std::vector<std::vector<char>> live(n);
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; ++r) {
            const auto& states = g.rules[r].states;
            std::vector<char>& ok = live[r];
            ok.assign(states.size(), 0);
            for (size_t s = 0; s < states.size(); ++s) ok[s] = states[s].accept;
            for (bool grow = true; grow;) {
                grow = false;
                for (size_t s = 0; s < states.size(); ++s) {
                    if (ok[s]) continue;
                    bool any = false;
                    for (const SymRange& e : states[s].edges) any = any || ok[static_cast<size_t>(e.to)];
                    for (const Call& c : states[s].calls)
                        any = any || (productive[static_cast<size_t>(c.rule)] && ok[static_cast<size_t>(c.to)]);
                    if (any) ok[s] = grow = true;
                }
            }
            if (!states.empty() && ok[0] && !productive[r]) productive[r] = changed = true;
        }
    }
    if (!productive[static_cast<size_t>(g.root)])
        throw std::runtime_error("constrain: the grammar accepts nothing (rule '" +
                                 g.rules[static_cast<size_t>(g.root)].name +
                                 "' can never complete, e.g. a required property whose schema is "
                                 "unsatisfiable or infinitely recursive)");
    for (size_t r = 0; r < n; ++r) {
        auto& states = g.rules[r].states;
        if (!productive[r]) {
            states.clear();
            continue;
        }
        // reachability from the start over live transitions
        std::vector<int32_t> remap(states.size(), -1);
        std::vector<int32_t> order{0};
        remap[0] = 0;
        auto visit = [&](int32_t t) {
            if (live[r][static_cast<size_t>(t)] && remap[static_cast<size_t>(t)] < 0) {
                remap[static_cast<size_t>(t)] = static_cast<int32_t>(order.size());
                order.push_back(t);
            }
        };
        for (size_t i = 0; i < order.size(); ++i) {
            const DfaState& st = states[static_cast<size_t>(order[i])];
            for (const SymRange& e : st.edges) visit(e.to);
            for (const Call& c : st.calls)
                if (productive[static_cast<size_t>(c.rule)]) visit(c.to);
        }
        std::vector<DfaState> out;
        out.reserve(order.size());
        for (int32_t old : order) {
            DfaState st;
            st.accept = states[static_cast<size_t>(old)].accept;
            for (const SymRange& e : states[static_cast<size_t>(old)].edges)
                if (remap[static_cast<size_t>(e.to)] >= 0) st.edges.push_back({e.lo, e.hi, remap[static_cast<size_t>(e.to)]});
            for (const Call& c : states[static_cast<size_t>(old)].calls)
                if (productive[static_cast<size_t>(c.rule)] && remap[static_cast<size_t>(c.to)] >= 0)
                    st.calls.push_back({c.rule, remap[static_cast<size_t>(c.to)]});
            out.push_back(std::move(st));
        }
        states = std::move(out);
    }
}

// Merges equivalent states of one rule (Moore's partition refinement, a bisimulation): two states are
// equivalent when both accept or both do not, and their edges and calls lead to equivalent states. Subset
// construction of a regex leaves many duplicates (an email format: 29 states, 10 distinct), and every
// state of a leaf rule costs a walk of the vocabulary at compile time. Counted strings are left as they
// are: the engine derives their entries position by position (Engine::compute_counted_entries).
void minimize(DfaRule& r) {
    const size_t n = r.states.size();
    if (n < 2 || r.counted) return;
    // A state's signature under the current classes: its class, then (lo, hi, class) per maximal run of
    // symbols with one target class, then -1 and (rule, class) per distinct call.
    auto signature = [&](const DfaState& st, const std::vector<int32_t>& cls, int32_t own) {
        std::vector<int32_t> sig{own};
        for (const SymRange& e : st.edges) {
            const int32_t c = cls[static_cast<size_t>(e.to)];
            const size_t m = sig.size();
            if (m >= 4 && sig[m - 1] == c && sig[m - 2] + 1 == e.lo) sig[m - 2] = e.hi;
            else sig.insert(sig.end(), {e.lo, e.hi, c});
        }
        sig.push_back(-1);
        std::vector<std::pair<int32_t, int32_t>> calls;
        for (const Call& c : st.calls) calls.emplace_back(c.rule, cls[static_cast<size_t>(c.to)]);
        std::sort(calls.begin(), calls.end());
        calls.erase(std::unique(calls.begin(), calls.end()), calls.end());
        for (const auto& [rule, c] : calls) sig.insert(sig.end(), {rule, c});
        return sig;
    };
    std::vector<int32_t> cls(n);
    for (size_t s = 0; s < n; ++s) cls[s] = r.states[s].accept ? 1 : 0;
    size_t n_cls = 0;
    for (;;) {   // classes only split; stop when a round splits none. Numbered by first state (start = 0).
        std::map<std::vector<int32_t>, int32_t> ids;
        std::vector<int32_t> next(n);
        for (size_t s = 0; s < n; ++s)
            next[s] = ids.emplace(signature(r.states[s], cls, cls[s]), static_cast<int32_t>(ids.size())).first->second;
        cls = std::move(next);
        if (ids.size() == n_cls) break;
        n_cls = ids.size();
    }
    if (n_cls == n) return;
    std::vector<DfaState> out(n_cls);
    std::vector<char> done(n_cls, 0);
    for (size_t s = 0; s < n; ++s) {
        const size_t c = static_cast<size_t>(cls[s]);
        if (done[c]) continue;
        done[c] = 1;
        DfaState& st = out[c];
        st.accept = r.states[s].accept;
        for (const SymRange& e : r.states[s].edges) {
            const int32_t to = cls[static_cast<size_t>(e.to)];
            if (!st.edges.empty() && st.edges.back().to == to && st.edges.back().hi + 1 == e.lo) st.edges.back().hi = e.hi;
            else st.edges.push_back({e.lo, e.hi, to});
        }
        for (const Call& k : r.states[s].calls) st.calls.push_back({k.rule, cls[static_cast<size_t>(k.to)]});
        std::sort(st.calls.begin(), st.calls.end());
        st.calls.erase(std::unique(st.calls.begin(), st.calls.end()), st.calls.end());
    }
    r.states = std::move(out);
}

// nullable[r]: rule r can complete without consuming a symbol.
std::vector<char> nullable_rules(const CompiledRules& g, std::vector<std::vector<char>>& state_nullable) {
    const size_t n = g.rules.size();
    std::vector<char> nullable(n, 0);
    state_nullable.assign(n, {});
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; ++r) {
            const auto& states = g.rules[r].states;
            auto& sn = state_nullable[r];
            sn.assign(states.size(), 0);
            for (bool grow = true; grow;) {
                grow = false;
                for (size_t s = 0; s < states.size(); ++s) {
                    if (sn[s]) continue;
                    bool v = states[s].accept;
                    for (const Call& c : states[s].calls)
                        v = v || (nullable[static_cast<size_t>(c.rule)] && sn[static_cast<size_t>(c.to)]);
                    if (v) sn[s] = grow = true;
                }
            }
            if (!states.empty() && sn[0] && !nullable[r]) nullable[r] = changed = true;
        }
    }
    return nullable;
}

void check_left_recursion(const CompiledRules& g, const std::vector<char>& nullable) {
    const size_t n = g.rules.size();
    std::vector<std::vector<int32_t>> left_calls(n);
    for (size_t r = 0; r < n; ++r) {
        const auto& states = g.rules[r].states;
        if (states.empty()) continue;
        std::vector<char> seen(states.size(), 0);
        std::vector<int32_t> todo{0};
        seen[0] = 1;
        while (!todo.empty()) {
            int32_t s = todo.back();
            todo.pop_back();
            for (const Call& c : states[static_cast<size_t>(s)].calls) {
                left_calls[r].push_back(c.rule);
                if (nullable[static_cast<size_t>(c.rule)] && !seen[static_cast<size_t>(c.to)]) {
                    seen[static_cast<size_t>(c.to)] = 1;
                    todo.push_back(c.to);
                }
            }
        }
    }
    // cycle detection (iterative DFS colouring)
    std::vector<int> colour(n, 0);
    for (size_t r0 = 0; r0 < n; ++r0) {
        if (colour[r0]) continue;
        std::vector<std::pair<size_t, size_t>> stack{{r0, 0}};
        colour[r0] = 1;
        while (!stack.empty()) {
            auto& [r, i] = stack.back();
            if (i < left_calls[r].size()) {
                size_t c = static_cast<size_t>(left_calls[r][i++]);
                if (colour[c] == 1)
                    throw std::runtime_error("constrain: left-recursive reference: rule '" + g.rules[c].name +
                                             "' can reach itself without producing any text (e.g. a $ref "
                                             "cycle through anyOf/allOf)");
                if (colour[c] == 0) {
                    colour[c] = 1;
                    stack.push_back({c, 0});
                }
            } else {
                colour[r] = 2;
                stack.pop_back();
            }
        }
    }
}

void compute_follow(CompiledRules& g, const std::vector<char>& nullable,
                    const std::vector<std::vector<char>>& state_nullable) {
    const size_t n = g.rules.size();
    std::vector<std::vector<std::bitset<256>>> first(n);
    for (size_t r = 0; r < n; ++r) {
        first[r].assign(g.rules[r].states.size(), {});
        for (size_t s = 0; s < g.rules[r].states.size(); ++s)
            for (const SymRange& e : g.rules[r].states[s].edges)
                for (int b = e.lo; b <= std::min<int>(e.hi, 255); ++b) first[r][s].set(static_cast<size_t>(b));
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; ++r)
            for (size_t s = 0; s < g.rules[r].states.size(); ++s)
                for (const Call& c : g.rules[r].states[s].calls) {
                    std::bitset<256> add = first[static_cast<size_t>(c.rule)].empty()
                                               ? std::bitset<256>{}
                                               : first[static_cast<size_t>(c.rule)][0];
                    if (nullable[static_cast<size_t>(c.rule)]) add |= first[r][static_cast<size_t>(c.to)];
                    if ((first[r][s] | add) != first[r][s]) {
                        first[r][s] |= add;
                        changed = true;
                    }
                }
    }
    g.follow.assign(n, {});
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; ++r)
            for (size_t s = 0; s < g.rules[r].states.size(); ++s)
                for (const Call& c : g.rules[r].states[s].calls) {
                    std::bitset<256> add = first[r][static_cast<size_t>(c.to)];
                    if (state_nullable[r][static_cast<size_t>(c.to)]) add |= g.follow[r];
                    auto& f = g.follow[static_cast<size_t>(c.rule)];
                    if ((f | add) != f) {
                        f |= add;
                        changed = true;
                    }
                }
    }
}

}  // namespace

CompiledRules compile_rules(const RuleSet& rules, int32_t root) {
    CompiledRules g;
    g.root = root;
    g.token_terminals = rules.token_terminals();
    g.rules.reserve(rules.size());
    // Budgets (hostile schemas): the subset construction may grow exponentially, and every state of a rule that
    // is not a counted string costs the engine one walk of the vocabulary, so both are bounded and refused with
    // a clear error instead of minutes of compilation. Every real tool schema of the test corpora stays far below.
    constexpr size_t kMaxDfaStates = 1u << 16, kMaxWalkedStates = 4096;
    size_t dfa_states = 0;
    for (size_t r = 0; r < rules.size(); ++r)
    {
        g.rules.push_back(determinize(rules.nfa(static_cast<int32_t>(r)), rules.name(static_cast<int32_t>(r))));
        if (const CountedString* c = rules.counted_string(static_cast<int32_t>(r))) g.rules.back().counted = *c;
        dfa_states += g.rules.back().states.size();
        if (dfa_states > kMaxDfaStates)
            throw std::length_error("grammar too large: more than " + std::to_string(kMaxDfaStates) +
                                    " automaton states (rule '" + g.rules.back().name + "'); simplify the schema");
    }
    prune(g);
    for (DfaRule& r : g.rules) minimize(r);
    size_t walked = 0;
    for (const DfaRule& r : g.rules)
        if (!r.counted) walked += r.states.size();
    if (walked > kMaxWalkedStates) {
        std::string biggest;
        size_t most = 0;
        for (const DfaRule& r : g.rules)
            if (!r.counted && r.states.size() > most) most = r.states.size(), biggest = r.name;
        throw std::length_error("grammar too large: " + std::to_string(walked) + " automaton states outside length-"
                                "bounded strings, more than the limit of " + std::to_string(kMaxWalkedStates) +
                                " (largest: '" + biggest + "' with " + std::to_string(most) + "); simplify the schema");
    }
    std::vector<std::vector<char>> state_nullable;
    std::vector<char> nullable = nullable_rules(g, state_nullable);
    check_left_recursion(g, nullable);
    compute_follow(g, nullable, state_nullable);
    return g;
}

}  // namespace qnext::constrain
