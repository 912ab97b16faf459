; Inno Setup script of the Windows installer. UNTESTED (no Windows build machine): see
; docs/installer.md, "Windows". Build the bundle first on Windows (CPython 3.11 x64):
;   py -3.11 -m venv build\installer\venv
;   build\installer\venv\Scripts\pip install -r requirements.lock -r packaging\requirements.lock
;   build\installer\venv\Scripts\pip install --no-deps --no-build-isolation .
;   build\installer\venv\Scripts\pyinstaller --noconfirm --distpath dist packaging\strokelens.spec
; then: iscc packaging\windows\strokelens.iss   ->  dist\strokelens-setup-0.1.0.exe
; (requirements.lock is made for Linux: on Windows, lock again with --python-platform
; x86_64-pc-windows-msvc, and the CPU torch wheel for Windows.)

#define AppVersion "0.1.0"

[Setup]
AppId={{6F1D0B9E-5C1A-4D7E-9E0B-57524F4B454C}
AppName=StrokeLens
AppVersion={#AppVersion}
AppPublisher=StrokeLens developers
DefaultDirName={autopf}\StrokeLens
DefaultGroupName=StrokeLens
OutputDir=..\..\dist
OutputBaseFilename=strokelens-setup-{#AppVersion}
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
ChangesEnvironment=yes
SetupIconFile=..\strokelens.ico

[Files]
Source: "..\..\dist\strokelens\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{group}\StrokeLens"; Filename: "{app}\strokelens.exe"; Parameters: "app"; IconFilename: "{app}\strokelens.exe"
Name: "{group}\StrokeLens self-test"; Filename: "{app}\strokelens.exe"; Parameters: "--self-test"

[Registry]
; strokelens on the PATH (the console commands and --self-test)
Root: HKLM; Subkey: "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"; \
  ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; \
  Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\strokelens.exe"; Parameters: "--self-test"; Flags: postinstall skipifsilent runhidden; Description: "Run the self-test"

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKLM, 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment', 'Path', Path) then
    Result := True
  else
    Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;
