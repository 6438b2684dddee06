// Small progressive enhancements; every page works without them. Loaded from /static (the CSP allows no inline script).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // "Edit from this": copy a candidate's text into the edit box.
  for (const button of document.querySelectorAll("button[data-copy-to]")) {
    button.addEventListener("click", () => {
      const target = document.getElementById(button.dataset.copyTo);
      if (target) {
        target.value = button.dataset.text;
        target.focus();
      }
    });
  }
  // Queue filters apply as soon as a select changes.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
});
