// Launch form: list only the shipped configs of the chosen recipe (one <optgroup> per recipe).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var recipe = document.getElementById("id_recipe");
    var config = document.getElementById("id_config_name");
    if (!recipe || !config) { return; }
    function show() {
      config.querySelectorAll("optgroup").forEach(function (group) {
        var mine = group.label === recipe.value;
        group.hidden = !mine;
        group.disabled = !mine;
        if (!mine && group.contains(config.selectedOptions[0])) { config.value = ""; }
      });
    }
    recipe.addEventListener("change", show);
    show();
  });
})();
