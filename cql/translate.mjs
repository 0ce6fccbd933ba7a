// CQL to ELM with the reference translator (@cqframework/cql, the Kotlin/JS build): FHIR 4.0.1 and System models.
//
//   node cql/translate.mjs SOURCE.cql [--out ELM.json]
//
// Prints {"errors": [...], "warnings": [...]} (each with its message and line) on stdout; with --out, writes
// the ELM JSON there, carrying the SHA-256 of the CQL it was compiled from as an ELM annotation tag
// (`dexfree-source-sha256`), so that `cds-service publish` can tell a stale ELM from a current one.
// Exits 1 when the CQL has errors (and then writes nothing).
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import {
  CqlCompilerOptions, CqlTranslator, LibraryManager, ModelManager, createLibrarySourceProvider, createModelInfoProvider, stringAsSource,
} from "@cqframework/cql/cql-to-elm";
import { SystemModelInfoProvider } from "@cqframework/cql/cql";

export const SOURCE_TAG = "dexfree-source-sha256";
const require = createRequire(import.meta.url);
const FHIR_MODEL_INFO = readFileSync(require.resolve("cql-exec-fhir/lib/modelInfos/fhir-modelinfo-4.0.1.xml"), "utf8");

function translator(source) {
  const models = new ModelManager();
  // The JS build registers no model info by itself; providers must answer a Source, not a string.
  models.modelInfoLoader.registerModelInfoProvider(new SystemModelInfoProvider(), true);
  models.modelInfoLoader.registerModelInfoProvider(createModelInfoProvider(
    (id, system, version) => (id === "FHIR" && (version == null || version === "4.0.1")) ? stringAsSource(FHIR_MODEL_INFO) : null));
  // The defaults without EnableAnnotations: the ELM then carries no copy of the CQL source (the Library
  // already ships it), and stays small enough to embed. Locators stay, so an engine can name a line.
  const { Options } = CqlCompilerOptions;
  const options = new CqlCompilerOptions().withOptions(
    [Options.EnableLocators, Options.DisableListDemotion, Options.DisableListPromotion]);
  const libraries = new LibraryManager(models, options);
  // DexFreeRules includes no other library: any include is an error the translator reports.
  libraries.librarySourceLoader.registerProvider(createLibrarySourceProvider(() => null));
  return CqlTranslator.fromText(source, libraries);
}

function described(list) {
  return list.asJsReadonlyArrayView().map((e) => {
    const where = String(e.locator ?? "");
    const line = /startLine=(\d+)/.exec(where);
    return { message: e.message, line: line ? Number(line[1]) : null };
  });
}

const args = process.argv.slice(2);
const source = readFileSync(args[0], "utf8");
const out = args.indexOf("--out") >= 0 ? args[args.indexOf("--out") + 1] : null;
const result = translator(source);
const report = { errors: described(result.errors), warnings: described(result.warnings) };
process.stdout.write(JSON.stringify(report, null, 2) + "\n");
if (report.errors.length) process.exit(1);
if (out) {
  const elm = JSON.parse(result.toJson());
  const digest = createHash("sha256").update(source, "utf8").digest("hex");
  elm.library.annotation = [...(elm.library.annotation ?? []),
    { type: "Annotation", t: [{ name: SOURCE_TAG, value: digest }] }];
  writeFileSync(out, JSON.stringify(elm) + "\n");
}
