// Tables for people and papers: a TextTable (already formatted cell strings plus per-column metadata)
// written as Markdown (GitHub pipe table), LaTeX (booktabs) or a terminal table that fits a width by
// abbreviating long text and dropping the least important columns. Not a query layer: the caller
// decides rows, columns and number formats (results/compare.h does for `quantlab compare`).
#pragma once

#include <string>
#include <vector>

#include "results/sqlite_db.h"

namespace ql {

struct TableColumn {
  std::string key;          // short name: terminal/CSV header, --columns name
  std::string title;        // Markdown header ("" = key)
  std::string latex;        // LaTeX header, raw ("" = title escaped)
  bool numeric = false;     // right-aligned; LaTeX cells in math mode
  int priority = 5;         // when too wide for the terminal the highest number goes first; 0 = never
  size_t min_chars = 0;     // may be abbreviated to this many characters ("…" included); 0 = never
};

struct TextTable {
  std::vector<TableColumn> columns;
  std::vector<std::vector<std::string>> rows;  // rows[r][c]: cell of column c, as printed
};

// Every column of a query result, numbers as SQLite prints them (SqlValueToString).
TextTable TableFromQuery(const SqlResult& r);
// Rows of strings under the column keys (for FormatCsv / FormatJson).
SqlResult TableToQuery(const TextTable& t);

std::string FormatMarkdown(const TextTable& t);
std::string FormatLatex(const TextTable& t);
// Columns separated by two spaces, a dashed rule under the header. width <= 0: every column at full
// width. Otherwise long text is abbreviated down to min_chars, then columns are dropped (highest
// priority number first, the rightmost among equals) until a line fits, and a last line names them
// (with the value, "algo=rtn", when it is the same in every row).
std::string FormatTerminal(const TextTable& t, int width);

// Columns of the terminal on stdout; 80 when stdout is not a terminal (a pipe, a file, a batch log).
int TerminalColumns();
// Characters as a terminal counts them (UTF-8 code points).
size_t DisplayWidth(const std::string& s);
std::string EscapeLatex(const std::string& s);

}  // namespace ql
