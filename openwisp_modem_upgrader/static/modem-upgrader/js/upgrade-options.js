"use strict";
/* Loads openwisp-controller's JSON-schema editor on the upgrade options:
 * with the schema of the chosen image's upgrader type when the textarea
 * names an image select (data-schema-selector, device page), or of its own
 * data-upgrader-type (mass upgrade). The server validates again. */
document.addEventListener("DOMContentLoaded", function () {
  var $ = django.jQuery;
  // the server sends each pattern with the shape it allows in words
  // (x-shape): operators read that, not a regular expression
  if (window.JSONEditor && !window.JSONEditor.modemShapes) {
    window.JSONEditor.modemShapes = true;
    window.JSONEditor.defaults.custom_validators.push(function (schema, value, path) {
      var pattern = schema["x-full-match"];
      if (!pattern || typeof value !== "string" || new RegExp(pattern).test(value)) {
        return [];
      }
      return [{ path: path, property: "pattern", message: "Must be " + schema["x-shape"] }];
    });
  }
  function editorOf(field) {
    return $("#" + field.id + "_jsoneditor").closest(".jsoneditor-wrapper");
  }

  function load(field, upgraderType, schemas) {
    if (!upgraderType || !schemas[upgraderType]) {
      // no image chosen: no options to edit (the server ignores them)
      editorOf(field).hide();
      $(field).closest(".form-row").hide();
      return;
    }
    try {
      JSON.parse(field.value || "{}");
    } catch (e) {
      // left as raw text next to the server's "Enter a valid JSON" error
      return;
    }
    if (!field.value) {
      field.value = "{}";
    }
    django._loadJsonSchemaUi(field, upgraderType, schemas, true);
    editorOf(field).show();
    writeOnSubmit(field);
  }

  // The editor copies its value into the field on its own "change" event,
  // which it fires a frame after an input changed: a Save clicked right
  // after typing submitted the old value. So the value is copied again when
  // the form is submitted, after the focused input committed its own.
  function writeOnSubmit(field) {
    var form = field.form;
    if (!form || field.dataset.writeOnSubmit) {
      return;
    }
    field.dataset.writeOnSubmit = "1";
    form.addEventListener(
      "submit",
      function () {
        var editor = django._jsonEditors[field.id + "_jsoneditor"];
        if (!editor || !editorOf(field).is(":visible")) {
          return;
        }
        var active = document.activeElement;
        if (active && editorOf(field)[0].contains(active)) {
          active.dispatchEvent(new Event("change", { bubbles: true }));
        }
        field.value = JSON.stringify(editor.getValue(), null, 4);
      },
      true,
    );
  }

  $('textarea[data-upgrader-schemas]:not([name*="__prefix__"])').each(function () {
    var field = this,
      schemas = JSON.parse(field.dataset.upgraderSchemas),
      selectorName = field.dataset.schemaSelector,
      form = $(field).closest("form"),
      select;
    if (window.staticUrl === undefined) {
      window.staticUrl = field.dataset.staticUrl;
    }
    if (!selectorName) {
      load(field, field.dataset.upgraderType, schemas);
      return;
    }
    select = form.find('select[name="' + selectorName + '"]');
    function chosenType() {
      var option = select.find("option:selected");
      return option.data("upgrader-type");
    }
    load(field, chosenType(), schemas);
    select.on("change", function () {
      // another image may mean another schema: start from its defaults
      field.value = "{}";
      load(field, chosenType(), schemas);
    });
  });
});
