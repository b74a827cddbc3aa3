// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  function on(sel, type, fn) {
    document.addEventListener(type, function (e) {
      var t = e.target.closest(sel);
      if (t) fn(e, t);
    });
  }

  // Company switcher: go to the chosen company.
  on("[data-navigate]", "change", function (e, el) {
    if (el.value && el.value.charAt(0) === "/") window.location.assign(el.value);
  });

  // Mobile menu.
  on("[data-toggle]", "click", function (e, el) {
    var target = document.getElementById(el.getAttribute("data-toggle"));
    if (!target) return;
    var open = target.classList.toggle("open");
    el.setAttribute("aria-expanded", open ? "true" : "false");
  });

  // Confirm destructive forms.
  on("form[data-confirm]", "submit", function (e, form) {
    if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
  });

  // Select all rows.
  on("[data-select-all]", "change", function (e, box) {
    var form = box.closest("form");
    form.querySelectorAll('input[name="ids"]').forEach(function (c) { c.checked = box.checked; });
  });

  // Qualification sliders: show the value; moving a slider means it is scored.
  on("input[type=range][data-score]", "input", function (e, el) {
    var name = el.getAttribute("data-score");
    var unset = document.querySelector('[data-unset="' + name + '"]');
    if (unset) unset.checked = false;
    var out = document.getElementById("o-" + name);
    if (out) out.textContent = el.value;
  });

  // Column chooser: keep the hidden `cols` list in step with the checkboxes.
  on("[data-col]", "change", function (e, box) {
    var form = box.closest("form");
    var chosen = [];
    form.querySelectorAll("[data-col]:checked").forEach(function (c) { chosen.push(c.value); });
    form.querySelector("[data-cols]").value = chosen.join(",");
  });
})();
