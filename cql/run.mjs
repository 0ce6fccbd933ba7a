// Runs an ELM library with cql-execution and cql-exec-fhir (FHIR R4) on many patients in one process.
//
//   node cql/run.mjs < request.json > answers.json
//
// request: {"elm": path, "valueSets": {url: [{system, code}]}, "expressions": [names], "parameters": {name: value},
//           "scenarios": [{"id", "bundle", "draftOrders": [MedicationRequest], "evaluationDate": "YYYY-MM-DD"}]}
// answers: {scenario id: {expression name: value}}; FHIR resources are answered by `Type/id`, dates by their
// ISO text, so that the caller compares plain JSON. An evaluation that throws answers {"error": message}.
import { readFileSync } from "node:fs";
import cql from "cql-execution";
import cqlfhir from "cql-exec-fhir";

const request = JSON.parse(readFileSync(0, "utf8"));
const library = new cql.Library(JSON.parse(readFileSync(request.elm, "utf8")));
const valueSets = Object.fromEntries(Object.entries(request.valueSets).map(([url, codes]) => [url, { "": codes }]));
const codeService = new cql.CodeService(valueSets);
const wrapper = cqlfhir.FHIRWrapper.FHIRv401();

function plain(value) {
  if (value == null) return null;
  if (Array.isArray(value)) return value.map(plain);
  if (value.isDate || value.isDateTime) return value.toString();
  if (value._json && value._json.resourceType) return `${value._json.resourceType}/${value._json.id}`;
  if (value._json !== undefined) return value._json;
  if (typeof value === "object") {
    if (value.isQuantity) return `${value.value} ${value.unit}`;
    if (value.isCode) return { system: value.system, code: value.code };
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const source = cqlfhir.PatientSource.FHIRv401();  // its model info is parsed once
const answers = {};
for (const scenario of request.scenarios) {
  const parameters = {
    ...(request.parameters ?? {}),
    "Draft Orders": scenario.draftOrders.map((order) => wrapper.wrap(order)),
    "Evaluation Date": cql.Date.parse(scenario.evaluationDate),
  };
  source.reset();
  source.loadBundles([scenario.bundle]);
  try {
    const executor = new cql.Executor(library, codeService, parameters);
    const results = await executor.exec(source, cql.DateTime.parse(`${scenario.evaluationDate}T12:00:00.000+00:00`));
    const [patient] = Object.values(results.patientResults);
    answers[scenario.id] = Object.fromEntries(request.expressions.map((name) => [name, plain(patient[name])]));
  } catch (error) {
    answers[scenario.id] = { error: String(error && error.stack || error) };
  }
}
process.stdout.write(JSON.stringify(answers) + "\n");
