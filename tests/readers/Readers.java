// Java's two ZIP readers against the space folder an archive was made from
// (tests/readers/run.sh; single-file source launch, `java Readers.java`):
//
//   java Readers.java zipfile ARCHIVE DIR   java.util.zip.ZipFile (central
//                                           directory, random access)
//   java Readers.java stream DIR < ARCHIVE  java.util.zip.ZipInputStream
//                                           (local headers only, from stdin)
//
// Passes (exit 0) when the entries are exactly the files under DIR, each
// byte-identical to its file. Prints one line: entries, stored, deflated.
// ZipInputStream is the strict one: it throws "only DEFLATED entries can
// have EXT descriptor" for a stored entry with a data descriptor.
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Enumeration;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipInputStream;

public class Readers {
    static Map<String, Path> files(Path root) throws IOException {
        Map<String, Path> m = new TreeMap<>();
        try (Stream<Path> s = Files.walk(root)) {
            s.filter(Files::isRegularFile).forEach(p -> m.put(
                root.relativize(p).toString().replace('\\', '/'), p));
        }
        return m;
    }

    static int stored, deflated, entries;

    static void check(ZipEntry e, InputStream in, Map<String, Path> want)
        throws IOException {
        String n = e.getName();
        Path p = want.remove(n);
        if (p == null)
            throw new IOException("entry '" + n + "' has no source file (or "
                                  + "comes twice)");
        byte[] got = in.readAllBytes();
        if (!Arrays.equals(got, Files.readAllBytes(p)))
            throw new IOException("entry '" + n + "' differs from its file");
        if (e.getMethod() == ZipEntry.STORED)
            stored++;
        else
            deflated++;
        entries++;
    }

    public static void main(String[] a) throws IOException {
        String mode = a[0];
        Map<String, Path> want = files(Paths.get(a[a.length - 1]));
        if (mode.equals("zipfile")) {
            try (ZipFile z = new ZipFile(a[1], StandardCharsets.UTF_8)) {
                Enumeration<? extends ZipEntry> en = z.entries();
                while (en.hasMoreElements()) {
                    ZipEntry e = en.nextElement();
                    try (InputStream in = z.getInputStream(e)) {
                        check(e, in, want);
                    }
                }
            }
        } else if (mode.equals("stream")) {
            try (ZipInputStream z =
                     new ZipInputStream(System.in, StandardCharsets.UTF_8)) {
                ZipEntry e;
                while ((e = z.getNextEntry()) != null)
                    check(e, z, want);
            }
        } else {
            throw new IllegalArgumentException("mode: zipfile or stream");
        }
        if (!want.isEmpty())
            throw new IOException(want.size() + " files missing from the "
                                  + "archive, e.g. '" +
                                  want.keySet().iterator().next() + "'");
        System.out.println("java " + mode + ": " + entries + " entries, " +
                           stored + " stored, " + deflated + " deflated");
    }
}
