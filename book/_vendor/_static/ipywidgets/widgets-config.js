// Loaded after require.js and before embed-amd.js on pages with widgets (see nb_ipywidgets_js in _config.yml).
// 1. Point the @jupyter-widgets/* AMD modules at this folder, so embed-amd.js finds its fonts here
//    (webpack derives its asset URL from the folder of the module's URL) instead of asking for them elsewhere.
// 2. Make the theme's Font Awesome nest its <svg> inside the <i> icon instead of replacing the <i>: the Play
//    widget updates its <i> on every change and throws if it is gone, which breaks every jslink on the page.
//    (Set before the theme's deferred fontawesome.js runs: this script is synchronous, in <head>. The book's layout
//    no longer loads that script, see book/_templates/layout.html; the setting stays for builds that do.)
(function () {
  "use strict";
  var src = document.currentScript && document.currentScript.src;
  var here = src ? src.slice(0, src.lastIndexOf("/") + 1) : "_static/ipywidgets/";
  window.FontAwesomeConfig = Object.assign({}, window.FontAwesomeConfig, { autoReplaceSvg: "nest" });
  // Once a widget sets its icon's class again (fa fa-play, fa fa-pause), ipywidgets' own bundled icon font
  // draws it: hide the svg Font Awesome nested there at load, or both show (a play svg next to a pause glyph).
  var style = document.createElement("style");
  style.textContent = ".jupyter-widgets i.fa > svg.svg-inline--fa { display: none; }";
  document.head.appendChild(style);
  if (typeof window.require === "function" && typeof window.require.config === "function") {
    var dir = here.replace(/\/$/, "");
    // embed-amd.js defines @jupyter-widgets/base, .../controls, .../html-manager/dist/libembed-amd, ...:
    // every one of them must resolve to a URL in this folder.
    window.require.config({ paths: { "@jupyter-widgets": dir, "@jupyter-widgets/html-manager/dist": dir } });
  }
})();
