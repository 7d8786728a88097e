/** The C heap keeps its free top between the daemon's trims (glibc, through FFI). */
import assert from "node:assert/strict";

const GLIBC_LINUX = Deno.build.os === "linux" && Deno.build.env !== "musl";

// In a process of its own: the allocator's settings are the whole process's.
const SCRIPT = `
  import { nativeHeap } from ${
  JSON.stringify(new URL("../src/daemon/native_heap.ts", import.meta.url).href)
};
  import { openLibc } from ${
  JSON.stringify(new URL("../src/daemon/_libc.ts", import.meta.url).href)
};
  const libc = openLibc({
    malloc: { parameters: ["usize"], result: "pointer" },
    free: { parameters: ["pointer"], result: "void" },
    sbrk: { parameters: ["isize"], result: "pointer" },
  });
  if (typeof libc === "string") throw new Error(libc);
  const brk = () => Number(Deno.UnsafePointer.value(libc.symbols.sbrk(0n)));
  // 4 MiB in 64 KiB blocks (under the mmap threshold: from the heap's top), then freed.
  function shrinkAfterFree() {
    const blocks = [];
    for (let i = 0; i < 64; i++) blocks.push(libc.symbols.malloc(65536n));
    const grown = brk();
    for (const b of blocks.reverse()) libc.symbols.free(b);
    return grown - brk();
  }
  const heap = nativeHeap();
  if (heap === null) throw new Error("no native heap");
  const before = shrinkAfterFree();
  const kept = heap.keepFree(8 * 1024 * 1024);
  const after = shrinkAfterFree();
  const restored = heap.keepFree(null);
  const rested = shrinkAfterFree();
  heap.trim();
  console.log(JSON.stringify({ before, kept, after, restored, rested }));
`;

Deno.test({
  name:
    "nativeHeap().keepFree() keeps freed memory at the heap's top instead of giving it back at once, until set back to the default",
  ignore: !GLIBC_LINUX, // mallopt and malloc_trim are glibc's
  fn: async () => {
    const file = await Deno.makeTempFile({ suffix: ".ts" });
    let out: Deno.CommandOutput;
    try {
      await Deno.writeTextFile(file, SCRIPT);
      out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-ffi", "--allow-read", "--no-prompt", file],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } finally {
      await Deno.remove(file);
    }
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    // glibc's default gives back all but 128 KiB of the free top.
    assert.ok(r.before >= 3 * 1024 * 1024, JSON.stringify(r));
    assert.equal(r.kept, true);
    assert.equal(r.after, 0, JSON.stringify(r));
    // Back to glibc's default, it gives back again.
    assert.equal(r.restored, true);
    assert.ok(r.rested >= 3 * 1024 * 1024, JSON.stringify(r));
  },
});
