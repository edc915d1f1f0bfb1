// regdb's pages work without this script; it only adds the copy buttons.
"use strict";

function announce(text) {
  const region = document.getElementById("announce");
  if (region) region.textContent = text;
}

function setUpCopyButtons() {
  if (!navigator.clipboard) return; // no clipboard API (plain http off localhost): no button
  for (const button of document.querySelectorAll("button.copy[data-copy-target]")) {
    const source = document.getElementById(button.dataset.copyTarget);
    if (!source) continue;
    button.hidden = false;
    button.setAttribute("aria-label", "Copy: " + source.textContent);
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
        announce("Copied to the clipboard");
      } catch (err) {
        button.textContent = "Copy failed";
        announce("Could not copy: select the command and copy it by hand");
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
}

document.addEventListener("DOMContentLoaded", setUpCopyButtons);
