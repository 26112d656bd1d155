// Types for kiln-webgpu.

/** Stable error codes carried by every KilnError. */
export type KilnErrorCode =
  | 'WEBGPU_UNAVAILABLE' | 'UNSUPPORTED_MODEL' | 'CORRUPT_FILE' | 'OUT_OF_MEMORY'
  | 'DEVICE_LOST' | 'DEVICE_LIMIT' | 'ABORTED' | 'NETWORK_ERROR' | 'IO_ERROR'
  | 'QUOTA_EXCEEDED' | 'CACHE_ERROR' | 'CONTEXT_FULL' | 'TOKENIZER_ERROR' | 'TEMPLATE_LIMIT'
  | 'INVALID_INPUT' | 'BUSY' | 'DISPOSED' | 'GPU_ERROR' | 'INTERNAL' | 'BAD_ADAPTER'
  | 'BAD_TRAINING_INPUT';

export class KilnError extends Error {
  readonly code: KilnErrorCode;
  constructor(code: KilnErrorCode, message: string);
}

export interface LoadProgress {
  phase: 'download' | 'cache' | 'ready';
  loaded: number;
  total: number;
  fraction: number;
  fromCache: boolean;
}

/**
 * A GGUF model (URL, File/Blob or bytes), or a Hugging Face safetensors
 * folder: a base URL ending in "/", or a list of URLs/Files (config.json,
 * tokenizer.json, [tokenizer_config.json], model.safetensors or
 * model.safetensors.index.json and its shards).
 */
export type ModelSource = string | URL | Blob | ArrayBuffer | ArrayBufferView | (string | URL | File)[];

export interface LoadOptions {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** Run the model in a Web Worker (default true). */
  worker?: boolean;
  /** Cache URL sources in OPFS / Cache API and load from there next time (default true). */
  cache?: boolean;
  /** "cpu": the fast CPU backend (wasm SIMD128; LLMs, diffusion and LoRA training). By default LLMs and diffusion use it too without WebGPU, without an adapter, or with only a software adapter (SwiftShader, WARP); "webgpu" (or a power preference) keeps WebGPU there. */
  adapterPreference?: 'webgpu' | 'high-performance' | 'low-power' | 'cpu';
  /** CPU backend: 8-bit activations like llama.cpp (default "q8") or f32 (greedy ids equal PyTorch's). */
  cpuActivations?: 'q8' | 'f32';
  /** CPU backend threads (default: the core count, at most 8). More than one needs a cross-origin-isolated page (COOP/COEP) and the worker (`worker: true`, the default); otherwise one thread, and `adapter.reason` says why. */
  cpuThreads?: number;
  /** URL of kiln_wasm_mt_bg.wasm (the threaded build) when it is not next to the module. */
  wasmThreadsUrl?: string | URL;
  /** Longest conversation in tokens (default 2048). */
  maxContext?: number;
  /** Tokens per prefill step (default 64). */
  prefillChunk?: number;
  /** f16 KV cache where the device has shader-f16 (half the memory). */
  kvF16?: boolean;
  /** Safetensors only: re-encode weight matrices on load (GGUF weights load as stored). */
  quantize?: 'none' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q2_k' | 'q3_k' | 'q4_k' | 'q5_k' | 'q6_k' | 'iq4_nl' | 'iq4_xs' | 'f16' | 'bf16' | null;
  /** URL of kiln_wasm_bg.wasm when it is not next to the module. */
  wasmUrl?: string | URL;
  /** Lower the storage-binding limit (tests: weight splitting). */
  maxBindingBytes?: number;
  /** Room for LoRA adapters at inference: their total rank (default 0: none). */
  loraRank?: number;
}

/** Figures of one optimizer step of `trainLoRA`. */
export interface TrainStep {
  step: number;
  loss: number;
  /** NaN on steps without a validation pass. */
  valLoss: number;
  gradNorm: number;
  lr: number;
  tokens: number;
  done: boolean;
}

export interface TrainOptions {
  rank?: number;
  alpha?: number;
  /** "q,k,v,o,gate,up,down" (any subset) or "all" (default). */
  targets?: string;
  rslora?: boolean;
  /** LoRA dropout on the input of A while training (PEFT's lora_dropout; default 0). */
  dropout?: number;
  steps?: number;
  lr?: number;
  batchSize?: number;
  seqLen?: number;
  /** Micro-batches per optimizer step (gradient accumulation). */
  accum?: number;
  warmup?: number;
  schedule?: 'cosine' | 'linear' | 'constant';
  weightDecay?: number;
  /** Global gradient-norm clip (0: off; default 1). */
  maxGradNorm?: number;
  seed?: number;
  /** Validation every N steps (0: never; default 10). */
  evalEvery?: number;
  /** Fraction of the packed sequences held out for validation (default 0.1). */
  valFraction?: number;
  maxValSequences?: number;
  /** Rows of logits computed at once in the loss head (default 256). */
  headRows?: number;
  /** End-of-turn text that closes a trained reply (default "<|im_end|>"). */
  eot?: string;
  /** Start from this adapter instead of PEFT's default init. */
  init?: LoRAAdapter;
  onStep?: (s: TrainStep) => void;
  signal?: AbortSignal;
}

export interface TrainJob {
  done: Promise<{ adapter: LoRAAdapter; steps: TrainStep[]; aborted: boolean; info: { parameters: number; factors: number; sequences: number; validationSequences: number; steps: number } }>;
  /** The steps so far. */
  history: TrainStep[];
}

/** A LoRA adapter as PEFT's two files. */
export class LoRAAdapter {
  constructor(config: string, weights: Uint8Array);
  readonly config: string;
  readonly weights: Uint8Array;
  readonly rank: number;
  readonly alpha: number;
  readonly targets: string[];
  readonly rslora: boolean;
  files(): { 'adapter_config.json': Blob; 'adapter_model.safetensors': Blob };
  saveToOPFS(name: string): Promise<void>;
  static fromOPFS(name: string): Promise<LoRAAdapter>;
  static listOPFS(): Promise<string[]>;
  static deleteOPFS(name: string): Promise<void>;
  static load(source: string | URL | [Blob | string, Blob | string] | { config: string | Blob; weights: Uint8Array | Blob }): Promise<LoRAAdapter>;
}

export interface SamplingOptions {
  max_tokens?: number;
  /** 0 (default) is greedy. */
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  frequency_penalty?: number;
  presence_penalty?: number;
  seed?: number;
  stop?: string | string[];
  ignore_eos?: boolean;
  /**
   * When the context window fills, drop the older half of the conversation
   * (keeping the start of the prompt) and go on; otherwise generation stops
   * there (finish reason 'length').
   */
  context_shift?: boolean;
  signal?: AbortSignal;
}

export interface ChatMessage { role: 'system' | 'user' | 'assistant' | string; content: string }

export interface ChatCompletionRequest extends SamplingOptions {
  messages: ChatMessage[];
  stream?: boolean;
  model?: string;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface Usage { prompt_tokens: number; completion_tokens: number; total_tokens: number }

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: number; message: { role: 'assistant'; content: string }; finish_reason: FinishReason; logprobs: null }[];
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: number; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null; logprobs: null }[];
  usage?: Usage;
}

export interface AdapterInfo {
  name: string;
  backend: string;
  shaderF16: boolean;
  subgroups: boolean;
  maxStorageBinding: number;
  maxBuffer: number;
  /** The fast CPU backend (name: e.g. "cpu (1 thread, wasm, 8-bit activations)"), not a WebGPU adapter. */
  cpu: boolean;
  /** A software WebGPU adapter (isFallbackAdapter: SwiftShader, WARP). */
  software: boolean;
  /** Threads running the CPU backend's kernels (0 on WebGPU). */
  threads: number;
  /** Why this backend was picked (e.g. "the WebGPU adapter is a software one (adapterPreference \"webgpu\" uses it)"). */
  reason: string;
}

export interface GenerationStats {
  promptTokens: number;
  prefilledTokens: number;
  completionTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  finishReason: FinishReason;
  /** The generated token ids. */
  tokens: number[];
}

export class LLM {
  readonly adapter: AdapterInfo;
  readonly fromCache: boolean;
  readonly cacheError: { code: KilnErrorCode; message: string } | null;
  readonly lastStats: GenerationStats | null;
  generate(prompt: string, opts?: SamplingOptions): AsyncGenerator<string, void, void>;
  generateIds(ids: number[], opts?: SamplingOptions): AsyncGenerator<string, void, void>;
  readonly chat: {
    completions: {
      create(req: ChatCompletionRequest & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(req: ChatCompletionRequest & { stream?: false }): Promise<ChatCompletion>;
    };
  };
  tokenize(text: string, addSpecial?: boolean): Promise<number[]>;
  detokenize(ids: number[], skipSpecial?: boolean): Promise<string>;
  resetChat(): Promise<void>;
  /** LoRA fine-tuning of this model's base (GGUF or safetensors folder), in its worker. */
  trainLoRA(data: string | Blob | { messages: { role: string; content: string }[] }[], opts?: TrainOptions): TrainJob;
  loadAdapter(source: Parameters<typeof LoRAAdapter.load>[0]): Promise<LoRAAdapter>;
  /** Adapters at inference, unmerged; [] restores the base. Needs `loraRank`. */
  setAdapters(list: { adapter: LoRAAdapter; scale?: number }[]): Promise<void>;
  dispose(): Promise<void>;
}

/** Progress of `Kiln.loadDiffusion`: the file is read whole, then compiled for the device. */
export interface DiffusionLoadProgress {
  phase: 'download' | 'cache' | 'compile' | 'ready';
  loaded: number;
  total: number;
  fraction: number;
  fromCache: boolean;
}

export interface DiffusionLoadOptions {
  onProgress?: (p: DiffusionLoadProgress) => void;
  signal?: AbortSignal;
  /** Run the model in a Web Worker (default true). */
  worker?: boolean;
  /** Cache URL sources in OPFS / Cache API and load from there next time (default true). */
  cache?: boolean;
  /** "cpu": the fast CPU backend (wasm SIMD128, threads as for LLMs); by default also without WebGPU or with only a software adapter ("webgpu" keeps WebGPU). */
  adapterPreference?: 'webgpu' | 'high-performance' | 'low-power' | 'cpu';
  /** CPU backend threads (as for LLMs). */
  cpuThreads?: number;
  /** URL of kiln_wasm_mt_bg.wasm when it is not next to the module. */
  wasmThreadsUrl?: string | URL;
  /** 128×128 tiles per network call (default 1; 1..64). */
  batch?: number;
  /** Weights on the device (default 'f32'). */
  weights?: 'f32' | 'f16' | 'q8_0';
  /** URL of kiln_wasm_bg.wasm when it is not next to the module. */
  wasmUrl?: string | URL;
  /** Stable Diffusion: image size (default: the model's). */
  width?: number;
  height?: number;
  /** Stable Diffusion: false compiles for guidance ≤ 1 only (SD-Turbo); default true. */
  guidance?: boolean;
  /** Stable Diffusion: decode with the folder's `taesd/` (AutoencoderTiny). */
  taesd?: boolean;
  /**
   * Stable Diffusion: decode the VAE in tiles of its `sample_size`, blended as
   * diffusers' `enable_vae_tiling()`: less GPU memory for images larger than a tile.
   */
  vaeTiling?: boolean;
  /** Stable Diffusion: also load `taesd/` for step previews (`onStep`'s `preview`). */
  previews?: boolean;
  /** Stable Diffusion: also load the VAE encoder, for `initImage` (img2img). */
  img2img?: boolean;
}

/** Stable Diffusion text-to-image (or img2img with `initImage`). */
export interface TextToImageRequest {
  prompt: string;
  negativePrompt?: string;
  /** Denoising steps, 1..1000 (default 20). */
  steps?: number;
  scheduler?: 'euler' | 'euler-a' | 'ddim' | 'dpm++2m' | 'dpm++2m-karras' | 'lcm';
  /** Classifier-free guidance scale (default 7.5; 0 for a model loaded with guidance: false). */
  guidance?: number;
  seed?: number;
  /** img2img: the starting image at the model's size (ImageData or RGBA bytes). */
  initImage?: ImageData | Uint8ClampedArray | Uint8Array;
  /** img2img: how much of the schedule runs, (0, 1] (default 0.8). */
  strength?: number;
  signal?: AbortSignal;
  onStep?: (p: StepProgress) => void;
  /** false: no previews even when the model was loaded with `previews`. */
  previews?: boolean;
}

export interface StepProgress extends GenerateProgress {
  /** The image this step predicts, decoded by TAESD (models loaded with `previews`). */
  preview?: ImageData;
}

export interface TextToImageResult {
  width: number;
  height: number;
  image: ImageData;
}

export interface GenerateProgress {
  /** 128×128 tiles denoised so far (terrain), or steps done (Stable Diffusion), of `total`. */
  done: number;
  total: number;
  fraction: number;
}

export interface TerrainRequest {
  /** 1 (gentle) .. 100 (rugged); default 50. */
  difficulty?: number;
  /** Map size in pixels, 1..4096 each (default 128); over 128, blended 128² tiles. */
  width?: number;
  height?: number;
  /** Same seed, same request, same maps (default 0). */
  seed?: number;
  /** Number of maps, 1..1024 (default 1). */
  count?: number;
  /** Vary this heightmap (metres, row-major fromHeight × fromWidth) instead of generating anew. */
  from?: Float32Array | number[];
  fromWidth?: number;
  fromHeight?: number;
  /** How far the variation may move from `from`, 0..1 (default 0.5; 0 returns it resized). */
  strength?: number;
  signal?: AbortSignal;
  onProgress?: (p: GenerateProgress) => void;
}

export interface TerrainResult {
  width: number;
  height: number;
  count: number;
  /** count·height·width heights in metres (0 … 22.17), map i at offset i·height·width, row-major. */
  heights: Float32Array;
  /** The shaded relief of the first map. */
  image: ImageData;
  /** The shaded relief of every map (`images[0] === image`). */
  images: ImageData[];
}

export interface DiffusionStats {
  seconds: number;
  maps: number;
  width: number;
  height: number;
}

export class DiffusionModel {
  readonly adapter: AdapterInfo;
  readonly fromCache: boolean;
  readonly cacheError: { code: KilnErrorCode; message: string } | null;
  /** 128² tiles per network call. */
  readonly batch: number;
  readonly lastStats: DiffusionStats | null;
  generate(req?: TerrainRequest): Promise<TerrainResult>;
  /** Stable Diffusion models (loaded from a diffusers folder). */
  generate(req: TextToImageRequest): Promise<TextToImageResult>;
  /**
   * One raw network call: `noisy` NCHW [batch·1·128·128], per-sample `sigma`
   * and `label` = (difficulty − 1)/99; resolves to the denoised tensor.
   */
  denoise(noisy: Float32Array, sigma: Float32Array, label: Float32Array): Promise<Float32Array>;
  /** Stable Diffusion: encodes a prompt now, so it still generates after `freeTextEncoder()`. */
  encodePrompt(prompt: string, negativePrompt?: string): Promise<void>;
  /**
   * Stable Diffusion: frees the text encoder's GPU memory; the last 8 prompts
   * generated or encoded still generate, others reject with INVALID_INPUT.
   */
  freeTextEncoder(): Promise<void>;
  /** Stable Diffusion: GPU bytes the pipeline holds now. */
  deviceBytes(): Promise<number>;
  dispose(): Promise<void>;
}

export class Kiln {
  static loadLLM(source: ModelSource, opts?: LoadOptions): Promise<LLM>;
  /**
   * A terrain diffusion UNet (ONNX file: URL, File/Blob or bytes), or a
   * diffusers Stable-Diffusion folder (a base URL ending in "/", its Files, or URLs).
   */
  static loadDiffusion(source: string | URL | Blob | ArrayBuffer | ArrayBufferView | File[] | string[], opts?: DiffusionLoadOptions): Promise<DiffusionModel>;
  static hasModelInCache(url: string): Promise<boolean>;
  static deleteModelInCache(url: string): Promise<void>;
}

export function hasModelInCache(url: string): Promise<boolean>;
export function deleteModelInCache(url: string): Promise<void>;

/** Loads the WebAssembly on this thread ahead of time (optional). */
export default function init(wasmUrl?: string | URL): Promise<void>;
