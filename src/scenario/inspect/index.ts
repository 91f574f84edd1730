/**
 * `vsva inspect`: the offline SMMUv3 decoder (see inspect.ts). The CLI reads image files and
 * register specs with these helpers, calls `inspect`, and prints `renderInspect` or the report as
 * JSON (every value in it is JSON-able: addresses and 64-bit values are hex strings).
 */

export {
  backedRuns,
  dumpImages,
  ImageMemory,
  type ImageSpec,
  type MemoryImage,
  type Parsed,
  parseImageSpec,
  parseUint,
  type RecordedRead,
  readImages,
} from './images.ts';
export {
  type AccessName,
  type CdTableReport,
  type DescriptorReport,
  type EventReport,
  eventReport,
  type FieldReport,
  type InspectInput,
  type InspectQuery,
  type InspectReport,
  inspect,
  type RegimeReport,
  type Stage2FetchReport,
  type StreamTableReport,
  type StructureReport,
  type TranslationReport,
  type TranslationResult,
  type VerdictReport,
} from './inspect.ts';
export {
  canonicalRegisterName,
  parseRegisterSpec,
  type RegisterReport,
  type RegisterValues,
  registersFromSpecs,
} from './registers.ts';
export { renderInspect } from './render.ts';
export type { DescKind, WalkStep } from './walk.ts';
