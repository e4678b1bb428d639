// Click-to-enlarge for figures (loaded on every page by _config.yml: html_js_files; no dependencies).
// A click on an image in a chapter output or a figure shows it fitted to the window; a click or Escape closes it.
(function () {
  "use strict";
  var box = null;
  function close() { if (box) { box.hidden = true; box.firstChild.removeAttribute("src"); } }
  function open(img) {
    if (!box) {
      box = document.createElement("div");
      box.className = "probe-lightbox";
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-label", "enlarged figure (click or press Escape to close)");
      box.appendChild(document.createElement("img"));
      box.addEventListener("click", close);
      document.body.appendChild(box);
    }
    box.firstChild.src = img.currentSrc || img.src;
    box.firstChild.alt = img.alt || "";
    box.hidden = false;
  }
  document.addEventListener("click", function (e) {
    var img = e.target.closest && e.target.closest("img");
    if (!img || img.closest(".probe-lightbox") || img.closest("a")) return;
    if (!img.closest(".cell_output, figure")) return;
    e.preventDefault();
    open(img);
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });
})();
