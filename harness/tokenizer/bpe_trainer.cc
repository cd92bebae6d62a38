// Deterministic byte-level BPE trainer (word counts, incremental pair counts, lazy max-heap).
// Not a unigram/WordPiece trainer; no normalization, no BPE dropout.
#include <algorithm>
#include <map>
#include <queue>

#include "harness/tokenizer/byte_bpe.h"

namespace ql {
namespace {

uint64_t Key(int a, int b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

}  // namespace

StatusOr<std::unique_ptr<ByteBpeTokenizer>> TrainByteBpe(std::string_view text,
                                                        const ByteBpeTrainOptions& opt) {
  const int n_special = static_cast<int>(opt.special_tokens.size());
  if (opt.vocab_size < n_special + 256) {
    return Status::Errorf("TrainByteBpe: vocab_size {} is below the {} special tokens + 256 bytes",
                          opt.vocab_size, n_special);
  }
  for (int idx : {opt.bos_index, opt.eos_index}) {
    if (idx < -1 || idx >= n_special) {
      return Status::Errorf("TrainByteBpe: bos/eos index {} is not one of the {} special tokens", idx,
                            n_special);
    }
  }
  QL_ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::FromName(opt.pre_tokenizer));

  // Words and their counts, in byte order of the word so the run is deterministic.
  std::vector<std::string_view> all;
  pre.Split(text, &all);
  std::map<std::string_view, int64_t> counts;
  for (std::string_view w : all) ++counts[w];
  all.clear();
  all.shrink_to_fit();

  std::vector<std::string> pieces(opt.special_tokens);  // specials take ids 0..k-1
  for (int b = 0; b < 256; ++b) pieces.push_back(ByteBpeTokenizer::ByteToUnicode(static_cast<uint8_t>(b)));
  std::unordered_map<std::string, int> id_of;
  for (int i = n_special; i < static_cast<int>(pieces.size()); ++i) id_of.emplace(pieces[i], i);

  struct Word {
    std::vector<int> syms;
    int64_t count;
  };
  std::vector<Word> words;
  words.reserve(counts.size());
  for (const auto& [w, c] : counts) {
    Word word{{}, c};
    for (unsigned char ch : w) word.syms.push_back(n_special + ch);
    words.push_back(std::move(word));
  }

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int>> where;  // word indices (may repeat)
  for (int wi = 0; wi < static_cast<int>(words.size()); ++wi) {
    const Word& w = words[wi];
    for (size_t i = 0; i + 1 < w.syms.size(); ++i) {
      uint64_t k = Key(w.syms[i], w.syms[i + 1]);
      pair_count[k] += w.count;
      where[k].push_back(wi);
    }
  }
  // Max-heap on count; ties: smaller (left id, right id) first.
  struct Entry {
    int64_t count;
    uint64_t key;
  };
  auto lower = [](const Entry& a, const Entry& b) {
    return a.count < b.count || (a.count == b.count && a.key > b.key);
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(lower)> heap(lower);
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<int> last_seen(words.size(), -1);
  while (static_cast<int>(pieces.size()) < opt.vocab_size && !heap.empty()) {
    Entry e = heap.top();
    heap.pop();
    auto pc = pair_count.find(e.key);
    int64_t cur = pc == pair_count.end() ? 0 : pc->second;
    if (cur != e.count) {
      if (cur > 0) heap.push({cur, e.key});
      continue;
    }
    if (cur < std::max(opt.min_frequency, 1)) break;
    const int a = static_cast<int>(e.key >> 32), b = static_cast<int>(e.key & 0xFFFFFFFFu);
    std::string merged = pieces[a] + pieces[b];
    int new_id;
    auto it = id_of.find(merged);
    if (it != id_of.end()) {
      new_id = it->second;  // the same string reached by another split: reuse its id
    } else {
      new_id = static_cast<int>(pieces.size());
      pieces.push_back(merged);
      id_of.emplace(merged, new_id);
    }
    merges.emplace_back(pieces[a], pieces[b]);
    const int merge_index = static_cast<int>(merges.size());
    std::vector<int> touched = std::move(where[e.key]);
    where.erase(e.key);
    std::unordered_map<uint64_t, int64_t> delta;
    for (int wi : touched) {
      if (last_seen[wi] == merge_index) continue;
      last_seen[wi] = merge_index;
      Word& w = words[wi];
      bool has = false;
      for (size_t i = 0; i + 1 < w.syms.size() && !has; ++i) has = w.syms[i] == a && w.syms[i + 1] == b;
      if (!has) continue;
      for (size_t i = 0; i + 1 < w.syms.size(); ++i) delta[Key(w.syms[i], w.syms[i + 1])] -= w.count;
      std::vector<int> out;
      out.reserve(w.syms.size());
      for (size_t i = 0; i < w.syms.size();) {
        if (i + 1 < w.syms.size() && w.syms[i] == a && w.syms[i + 1] == b) {
          out.push_back(new_id);
          i += 2;
        } else {
          out.push_back(w.syms[i++]);
        }
      }
      w.syms = std::move(out);
      for (size_t i = 0; i + 1 < w.syms.size(); ++i) {
        uint64_t k = Key(w.syms[i], w.syms[i + 1]);
        delta[k] += w.count;
        if (w.syms[i] == new_id || w.syms[i + 1] == new_id) where[k].push_back(wi);
      }
    }
    // Apply in key order so heap contents (and so tie handling) never depend on hash order.
    std::vector<std::pair<uint64_t, int64_t>> changes(delta.begin(), delta.end());
    std::sort(changes.begin(), changes.end());
    for (const auto& [k, d] : changes) {
      if (d == 0) continue;
      int64_t& c = pair_count[k];
      c += d;
      if (d > 0) heap.push({c, k});
      if (c <= 0) pair_count.erase(k);
    }
  }

  ByteBpeSpec spec;
  spec.vocab = std::move(pieces);
  for (int i = 0; i < n_special; ++i) {
    spec.added_tokens.push_back({i, opt.special_tokens[i], true});
    spec.vocab[i].clear();  // added tokens are not model pieces
  }
  spec.merges = std::move(merges);
  spec.pre_tokenizer = opt.pre_tokenizer;
  spec.bos_id = opt.bos_index;
  spec.eos_id = opt.eos_index;
  return ByteBpeTokenizer::Create(std::move(spec));
}

}  // namespace ql
