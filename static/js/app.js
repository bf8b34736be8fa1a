// Tokenkeeper's few behaviours, without a build step. Pages work without it;
// htmx (static/vendor/htmx) does the live updates.
(function () {
  "use strict";

  function toggleMenu(button) {
    const menu = document.getElementById(button.getAttribute("aria-controls"));
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    menu.classList.toggle("open", open);
  }

  // In-page confirmation: the first button shows the panel with the real (submit) button.
  function openConfirm(button) {
    const panel = document.getElementById(button.getAttribute("aria-controls"));
    panel.classList.add("open");
    button.setAttribute("aria-expanded", "true");
    const first = panel.querySelector("button, a");
    if (first) first.focus();
  }

  function cancelConfirm(button) {
    const panel = button.closest(".confirm-panel");
    panel.classList.remove("open");
    const opener = document.querySelector(`[aria-controls="${panel.id}"]`);
    if (opener) {
      opener.setAttribute("aria-expanded", "false");
      opener.focus();
    }
  }

  function copyFrom(button) {
    const source = document.querySelector(button.dataset.copy);
    const text = source.value !== undefined ? source.value : source.textContent.trim();
    const done = () => {
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = button.dataset.label || "Copy"; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => selectText(source));
    } else {
      selectText(source);
    }
  }

  function selectText(element) {
    if (element.select) { element.select(); return; }
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.addEventListener("click", function (event) {
    const target = event.target.closest("button, summary");
    if (!target) {
      closeMenus(null);
      return;
    }
    if (target.classList.contains("nav-toggle")) toggleMenu(target);
    else if (target.hasAttribute("data-confirm-open")) openConfirm(target);
    else if (target.hasAttribute("data-confirm-cancel")) cancelConfirm(target);
    else if (target.dataset.copy) copyFrom(target);
    closeMenus(target.closest("details.menu"));
  });

  // One header menu open at a time; Escape closes them.
  function closeMenus(except) {
    document.querySelectorAll("details.menu[open]").forEach((menu) => {
      if (menu !== except) menu.removeAttribute("open");
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeMenus(null);
  });
})();
