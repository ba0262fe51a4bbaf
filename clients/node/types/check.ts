// Compiled by `tsc --noEmit` only: checks that index.d.ts describes the API the
// examples and README use. Never run.

import {
  Control,
  ControlError,
  CurveKeys,
  ProtocolError,
  Publisher,
  Subscriber,
  decodeMessage,
  encodeFrame,
  type Frame,
  type Message,
  type Reply,
} from "deepdenoise-client";

export async function acquisition(): Promise<void> {
  const pub = await new Publisher({ mode: "pub" }).bind("tcp://127.0.0.1:*");
  await pub.waitForSubscriber(10_000);
  await pub.start("cell-01", { tNs: 1_700_000_000_000_000_000n });
  const frame: Frame = { pixels: new Uint16Array(12), shape: [3, 4], series: "cell-01", index: 0 };
  await pub.sendFrame({ ...frame, tNs: 1_700_000_000_000_000_001n, meta: { exposure_ms: 12.5 } });
  await pub.end("cell-01");
  pub.close({ lingerMs: 1000 });
}

export async function analysis(): Promise<number> {
  const sub = new Subscriber({ topics: ["denoised", "traces"], timeoutMs: 5000 }).connect(
    "tcp://127.0.0.1:5556",
  );
  let total = 0;
  for await (const msg of sub) {
    const m: Message = msg;
    if (m.topic === "denoised" && m.pixels instanceof Float32Array && m.shape) {
      const [height, width] = m.shape;
      total += m.pixels[height * width - 1] ?? 0;
      const tNs: bigint | number | undefined = m.header.t_ns;
      void tNs;
    }
  }
  sub.close();
  return total;
}

export async function control(): Promise<Reply> {
  const ctl = new Control("tcp://127.0.0.1:5557", { timeoutMs: 5000 });
  try {
    await ctl.pause();
    await ctl.setRois({ data: new Uint16Array(12), shape: [3, 4] }, { series: "cell-01" });
    await ctl.setRois(null);
    await ctl.loadModel("models/dncnn.onnx");
    return await ctl.status();
  } catch (err) {
    if (err instanceof ControlError) throw new Error(String(err.reply?.error));
    if (err instanceof ProtocolError) throw new Error(err.reason);
    throw err;
  } finally {
    ctl.close();
  }
}

export async function secured(): Promise<Reply> {
  const curve = CurveKeys.fromFiles("keys/rig.key_secret", "keys/service.key");
  const fromEnv: CurveKeys | null = CurveKeys.fromEnv();
  const sub = new Subscriber({ topics: ["denoised"], curve }).connect("tcp://127.0.0.1:5556");
  sub.close();
  const own = CurveKeys.fromFiles("keys/acquisition.key_secret");
  const pub = await new Publisher({ mode: "pub", curve: own }).bind("tcp://127.0.0.1:5555");
  pub.close();
  const ctl = new Control("tcp://127.0.0.1:5557", { timeoutMs: 5000, curve: fromEnv ?? curve });
  try {
    return await ctl.status();
  } finally {
    ctl.close();
  }
}

export function codec(): number {
  const parts = encodeFrame({ pixels: new Float32Array(6), shape: [2, 3], series: "s", index: 1n });
  return decodeMessage(parts, { strict: true }).header.v;
}
