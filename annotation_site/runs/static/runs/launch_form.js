// Launch form: list only the shipped configs of the chosen recipe (one <optgroup> per recipe), and
// only its tunable keys (one [data-recipe] line per recipe).
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
      document.querySelectorAll("[data-recipe]").forEach(function (line) {
        line.hidden = line.dataset.recipe !== recipe.value;
      });
    }
    recipe.addEventListener("change", show);
    show();
  });
})();
