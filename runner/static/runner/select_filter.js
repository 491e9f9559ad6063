/* The run list's job filter applies as soon as a job is chosen (its Show button
   does the same without script). */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  document.querySelectorAll(".jr-select-filter select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
});
