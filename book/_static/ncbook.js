// The book's tables: numbers are right-aligned (ncbook.css); a column that holds words (a network's name,
// a dataset, a method) reads better left-aligned, header included. Pandas marks each cell's column with a
// class "colN"; a column is words when none of its cells starts like a number.
document.addEventListener("DOMContentLoaded", function () {
  var numeric = /^\s*([-+\u2212]?\s*[\d.]|[\u2013\u2014]?\s*$|nan\b|inf\b|<NA>)/i;
  document.querySelectorAll(".cell_output table").forEach(function (table) {
    var columns = {};
    table.querySelectorAll("tbody td").forEach(function (td) {
      var col = Array.prototype.find.call(td.classList, function (c) { return /^col\d+$/.test(c); });
      if (!col) { return; }
      columns[col] = columns[col] || {cells: [], words: true};
      columns[col].cells.push(td);
      if (numeric.test(td.textContent)) { columns[col].words = false; }
    });
    Object.keys(columns).forEach(function (col) {
      if (!columns[col].words) { return; }
      columns[col].cells.forEach(function (td) { td.classList.add("words"); });
      table.querySelectorAll("thead th." + col).forEach(function (th) { th.classList.add("words"); });
    });
  });
});
