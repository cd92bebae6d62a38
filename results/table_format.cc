// Markdown, LaTeX and width-fitting terminal tables (see table_format.h).
#include "results/table_format.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

namespace ql {
namespace {

std::string Pad(const std::string& s, size_t w, bool right) {
  const size_t n = DisplayWidth(s);
  if (n >= w) return s;
  return right ? std::string(w - n, ' ') + s : s + std::string(w - n, ' ');
}

// The first n-1 code points of s and "…", when s is longer than n.
std::string Abbreviate(const std::string& s, size_t n) {
  if (n == 0 || DisplayWidth(s) <= n) return s;
  size_t i = 0, cps = 0;
  while (i < s.size() && cps + 1 < n) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    ++cps;
  }
  return s.substr(0, i) + "…";
}

std::string Title(const TableColumn& c) { return c.title.empty() ? c.key : c.title; }

std::string EscapeMarkdown(const std::string& s) {
  std::string o;
  for (char ch : s) o += ch == '|' ? std::string("\\|") : std::string(1, ch);
  return o;
}

}  // namespace

int TerminalColumns() {
  winsize ws{};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return ws.ws_col;
  return 80;
}

size_t DisplayWidth(const std::string& s) {
  size_t n = 0;
  for (char ch : s) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  return n;
}

std::string EscapeLatex(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '\\': o += "\\textbackslash{}"; break;
      case '~': o += "\\textasciitilde{}"; break;
      case '^': o += "\\textasciicircum{}"; break;
      case '_': case '%': case '&': case '#': case '$': case '{': case '}': o += '\\'; o += ch; break;
      default: o += ch;
    }
  }
  return o;
}

TextTable TableFromQuery(const SqlResult& r) {
  TextTable t;
  for (size_t c = 0; c < r.columns.size(); ++c) {
    TableColumn col;
    col.key = r.columns[c];
    col.priority = int(c);
    col.numeric = !r.rows.empty();
    for (const auto& row : r.rows)
      col.numeric = col.numeric && (std::holds_alternative<int64_t>(row[c]) || std::holds_alternative<double>(row[c]));
    t.columns.push_back(col);
  }
  for (const auto& row : r.rows) {
    std::vector<std::string> cells;
    for (const auto& v : row) cells.push_back(SqlValueToString(v));
    t.rows.push_back(std::move(cells));
  }
  return t;
}

SqlResult TableToQuery(const TextTable& t) {
  SqlResult r;
  for (const auto& c : t.columns) r.columns.push_back(c.key);
  for (const auto& row : t.rows) r.rows.emplace_back(row.begin(), row.end());
  return r;
}

std::string FormatMarkdown(const TextTable& t) {
  const size_t n = t.columns.size();
  std::vector<size_t> w(n, 3);
  for (size_t c = 0; c < n; ++c) w[c] = std::max(w[c], DisplayWidth(EscapeMarkdown(Title(t.columns[c]))));
  for (const auto& row : t.rows)
    for (size_t c = 0; c < n; ++c) w[c] = std::max(w[c], DisplayWidth(EscapeMarkdown(row[c])));
  auto line = [&](auto cell) {
    std::string s = "|";
    for (size_t c = 0; c < n; ++c) {
      s += ' ';
      s += Pad(cell(c), w[c], t.columns[c].numeric);
      s += " |";
    }
    return s + "\n";
  };
  std::string out = line([&](size_t c) { return EscapeMarkdown(Title(t.columns[c])); });
  out += line([&](size_t c) {
    std::string rule(w[c], '-');
    (t.columns[c].numeric ? rule.back() : rule.front()) = ':';
    return rule;
  });
  for (const auto& row : t.rows) out += line([&](size_t c) { return EscapeMarkdown(row[c]); });
  return out;
}

std::string FormatLatex(const TextTable& t) {
  std::string spec, out;
  for (const auto& c : t.columns) spec += c.numeric ? 'r' : 'l';
  out = "\\begin{tabular}{" + spec + "}\n\\toprule\n";
  auto line = [&](auto cell) {
    std::string s;
    for (size_t c = 0; c < t.columns.size(); ++c) {
      if (c) s += " & ";
      s += cell(c);
    }
    return s + " \\\\\n";
  };
  out += line([&](size_t c) {
    const auto& col = t.columns[c];
    return col.latex.empty() ? EscapeLatex(Title(col)) : col.latex;
  });
  out += "\\midrule\n";
  for (const auto& row : t.rows)
    out += line([&](size_t c) {
      if (row[c].empty()) return std::string("--");
      std::string cell = EscapeLatex(row[c]);
      if (t.columns[c].numeric) cell.insert(cell.begin(), '$'), cell.push_back('$');
      return cell;
    });
  return out + "\\bottomrule\n\\end{tabular}\n";
}

std::string FormatTerminal(const TextTable& t, int width) {
  const size_t n = t.columns.size();
  std::vector<size_t> full(n), w(n);
  for (size_t c = 0; c < n; ++c) full[c] = DisplayWidth(t.columns[c].key);
  for (const auto& row : t.rows)
    for (size_t c = 0; c < n; ++c) full[c] = std::max(full[c], DisplayWidth(row[c]));
  w = full;
  std::vector<bool> keep(n, true);
  auto total = [&] {
    size_t s = 0, k = 0;
    for (size_t c = 0; c < n; ++c)
      if (keep[c]) s += w[c], ++k;
    return s + (k ? 2 * (k - 1) : 0);
  };
  if (width > 0 && total() > size_t(width)) {  // abbreviate, then drop
    for (size_t c = 0; c < n; ++c)
      if (t.columns[c].min_chars > 0)
        w[c] = std::max(DisplayWidth(t.columns[c].key), std::min(w[c], t.columns[c].min_chars));
    while (total() > size_t(width)) {
      int victim = -1;
      for (size_t c = 0; c < n; ++c)
        if (keep[c] && t.columns[c].priority > 0 &&
            (victim < 0 || t.columns[c].priority >= t.columns[size_t(victim)].priority))
          victim = int(c);
      if (victim < 0) break;
      keep[size_t(victim)] = false;
    }
  }
  std::string out;
  auto line = [&](auto cell) {
    std::string s;
    for (size_t c = 0; c < n; ++c)
      if (keep[c]) {
        if (!s.empty()) s += "  ";
        s += Pad(Abbreviate(cell(c), w[c]), w[c], t.columns[c].numeric);
      }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out += s + "\n";
  };
  line([&](size_t c) { return t.columns[c].key; });
  line([&](size_t c) { return std::string(w[c], '-'); });
  for (const auto& row : t.rows) line([&](size_t c) { return row[c]; });
  std::vector<std::string> items;
  for (size_t c = 0; c < n; ++c) {
    if (keep[c]) continue;
    bool constant = t.rows.size() > 1;
    for (const auto& row : t.rows) constant = constant && row[c] == t.rows[0][c];
    items.push_back(t.columns[c].key + (constant ? "=" + t.rows[0][c] : std::string()));
  }
  if (items.empty()) return out;
  items.front() = "(not shown to fit " + std::to_string(width) + " columns: " + items.front();
  items.back() += "; --wide shows all)";
  std::string note;
  for (size_t i = 0; i < items.size(); ++i) {  // wrapped at `width`, between items
    const std::string item = items[i] + (i + 1 < items.size() ? "," : "");
    if (!note.empty() && DisplayWidth(note) + 1 + DisplayWidth(item) > size_t(width)) {
      out += note + "\n";
      note.clear();
    }
    if (!note.empty()) note += ' ';
    note += item;
  }
  return out + note + "\n";
}

}  // namespace ql
