// Small progressive enhancements shared by every page. Pages work without it.
// (Library bundles — bpmn-js, charts — are built from webui/frontend/ into static/vendor/.)
(function () {
  "use strict";

  // Section menus marked data-tabs become tabs: one section at a time, chosen by the URL's #hash so
  // links, bookmarks and the back button keep working. "All" (the default) is the whole page, as an
  // auditor reads and prints it; printing always shows every section.
  var menu = document.querySelector("nav[data-tabs]");
  if (menu) {
    var links = Array.prototype.slice.call(menu.querySelectorAll("a[href^='#']"));
    var sections = links.map(function (link) { return document.getElementById(link.hash.slice(1)); })
      .filter(Boolean);
    var all = document.createElement("a");
    all.href = "#all";
    all.textContent = "All";
    menu.insertBefore(all, menu.firstChild);
    links.unshift(all);

    var show = function () {
      var wanted = window.location.hash.slice(1);
      var known = sections.some(function (section) { return section.id === wanted; });
      sections.forEach(function (section) { section.hidden = known && section.id !== wanted; });
      links.forEach(function (link) {
        var current = known ? link.hash.slice(1) === wanted : link === all;
        if (current) { link.setAttribute("aria-current", "true"); } else { link.removeAttribute("aria-current"); }
      });
      document.documentElement.dataset.tab = known ? wanted : "all";
    };
    window.addEventListener("hashchange", show);
    show();
  }
})();
