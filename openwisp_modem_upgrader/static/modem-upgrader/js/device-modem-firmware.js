"use strict";
/* Shows only the upgrade options of the chosen image's upgrader type. */
(function () {
  function toggleOptions(select) {
    var inline = select.closest(".inline-related");
    var option = select.options[select.selectedIndex];
    var type = option ? option.dataset.upgraderType : undefined;
    inline.querySelectorAll(".modem-upgrade-options").forEach(function (group) {
      group.hidden = group.dataset.upgraderType !== type;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document
      .querySelectorAll('.modem-firmware-inline select[name$="-upgrade_to"]')
      .forEach(function (select) {
        toggleOptions(select);
        select.addEventListener("change", function () {
          toggleOptions(select);
        });
      });
  });
})();
