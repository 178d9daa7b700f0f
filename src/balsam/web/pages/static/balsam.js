// Balsam's portal: small enhancements; every page works without them.
"use strict";

// A form with data-confirm keeps its submit button disabled until the text typed
// in its "confirm" field is exactly that value (the server checks it again).
function armConfirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    const input = form.querySelector("input[name=confirm]");
    const button = form.querySelector("button[type=submit]");
    if (!input || !button) continue;
    const update = () => { button.disabled = input.value.trim() !== form.dataset.confirm; };
    input.addEventListener("input", update);
    update();
  }
}

// A button with data-copy="<id>" copies that element's value or text.
function armCopyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = "value" in source ? source.value : source.textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.dataset.copied = "true";
      } catch {
        if (source.select) source.select();
      }
    });
  }
}

armConfirmations();
armCopyButtons();
